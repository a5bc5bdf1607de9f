"""Webhook endpoints and their delivery queue: every webhook query lives here.

The queue is an outbox: :func:`enqueue` runs inside the transaction that changed a comment,
after that transaction took the thread's row lock, so a crash loses no event and the ids of
one thread's rows are in commit order. Workers in any number of processes claim rows with a
lease; only the oldest open row of an endpoint and thread is ever claimable, so one thread's
events reach an endpoint in order, one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from db.database import Connection, Database, Row
from db.models import maybe_datetime, now

OPEN = "delivered IS NULL AND failed IS NULL"
ENDPOINT_COLUMNS = "id, url, events, private, created"

# The head of each (endpoint, thread) line that is due. PostgreSQL skips rows another
# process is claiming this instant; SQLite has one writer, so the compare-and-set below is
# all it needs.
_CLAIMABLE = (
    "SELECT d.id FROM webhook_deliveries d "
    "WHERE d.delivered IS NULL AND d.failed IS NULL AND d.next_attempt <= $1 "
    "AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.endpoint_id = d.endpoint_id "
    "AND p.thread_id = d.thread_id AND p.id < d.id "
    "AND p.delivered IS NULL AND p.failed IS NULL) "
    "ORDER BY d.next_attempt, d.id LIMIT $2"
)
CLAIMABLE = {"postgres": _CLAIMABLE + " FOR UPDATE OF d SKIP LOCKED", "sqlite": _CLAIMABLE}


def _frame(events: Sequence[str]) -> str:
    """Store event names comma-framed, so ``LIKE '%,name,%'`` matches exactly one name."""
    return "," + ",".join(events) + ","


@dataclass(frozen=True)
class Endpoint:
    id: int
    url: str
    events: tuple[str, ...]
    private: bool
    created: datetime

    @classmethod
    def from_row(cls, row: Row) -> Endpoint:
        return cls(
            row["id"],
            row["url"],
            tuple(e for e in row["events"].split(",") if e),
            bool(row["private"]),
            maybe_datetime(row["created"]) or now(),
        )


@dataclass(frozen=True)
class EndpointStatus:
    """What the admin shows of an endpoint's queue: counts and the latest failure."""

    endpoint_id: int
    waiting: int
    delivered: int
    failed: int
    last_error: str | None
    last_error_at: datetime | None


@dataclass(frozen=True)
class QueuedEvent:
    """One event to put on the queue: the body for readers' endpoints and for private ones."""

    type: str
    thread_id: int | None
    message_id: str
    public_body: str
    private_body: str


@dataclass(frozen=True)
class Delivery:
    """A claimed row with what sending it needs."""

    id: int
    endpoint_id: int
    url: str
    secret: str
    message_id: str
    type: str
    body: str
    created: datetime
    attempts: int


async def enqueue(conn: Connection, events: Sequence[QueuedEvent]) -> None:
    """Queue each event for every live endpoint that lists its type, in the caller's
    transaction. One statement per event whatever the number of endpoints."""
    when = now()
    for event in events:
        await conn.execute(
            "INSERT INTO webhook_deliveries (endpoint_id, thread_id, message_id, type, body, "
            "created, next_attempt) "
            "SELECT id, $1, $2, $3, CASE WHEN private = 1 THEN $5 ELSE $4 END, $6, $6 "
            "FROM webhook_endpoints WHERE deleted IS NULL AND events LIKE $7 ORDER BY id",
            event.thread_id,
            event.message_id,
            event.type,
            event.public_body,
            event.private_body,
            when,
            f"%,{event.type},%",
        )


class WebhookStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- endpoints ---------------------------------------------------------------------------

    async def add_endpoint(
        self, url: str, events: Sequence[str], private: bool, secret: str
    ) -> Endpoint:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO webhook_endpoints (url, events, private, secret, created) "
                f"VALUES ($1, $2, $3, $4, $5) RETURNING {ENDPOINT_COLUMNS}",
                url,
                _frame(events),
                int(private),
                secret,
                now(),
            )
        assert row is not None
        return Endpoint.from_row(row)

    async def endpoints(self) -> list[Endpoint]:
        async with self.db.read() as conn:
            rows = await conn.fetch(
                f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE deleted IS NULL "
                "ORDER BY id"
            )
        return [Endpoint.from_row(r) for r in rows]

    async def endpoint(self, endpoint_id: int) -> Endpoint | None:
        async with self.db.read() as conn:
            row = await conn.fetchrow(
                f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints "
                "WHERE id = $1 AND deleted IS NULL",
                endpoint_id,
            )
        return Endpoint.from_row(row) if row else None

    async def delete_endpoint(self, endpoint_id: int) -> bool:
        """Stop an endpoint: nothing new is queued for it and what waits is given up."""
        when = now()
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "UPDATE webhook_endpoints SET deleted = $2 WHERE id = $1 AND deleted IS NULL "
                "RETURNING id",
                endpoint_id,
                when,
            )
            if row is None:
                return False
            await conn.execute(
                f"UPDATE webhook_deliveries SET failed = $2, last_error = $3 "
                f"WHERE endpoint_id = $1 AND {OPEN}",
                endpoint_id,
                when,
                "endpoint deleted",
            )
        return True

    async def statuses(self) -> dict[int, EndpointStatus]:
        async with self.db.read() as conn:
            rows = await conn.fetch(
                "SELECT endpoint_id, "
                f"COUNT(*) FILTER (WHERE {OPEN}) AS waiting, "
                "COUNT(*) FILTER (WHERE delivered IS NOT NULL) AS delivered, "
                "COUNT(*) FILTER (WHERE failed IS NOT NULL) AS failed "
                "FROM webhook_deliveries GROUP BY endpoint_id"
            )
            # Each endpoint's latest undelivered error, found in one grouped pass: a subquery
            # per row (correlated on endpoint_id) made this quadratic in the table's rows.
            errors = await conn.fetch(
                "SELECT d.endpoint_id, d.last_error, COALESCE(d.failed, d.next_attempt) AS at "
                "FROM webhook_deliveries d WHERE d.id IN (SELECT MAX(e.id) FROM "
                "webhook_deliveries e WHERE e.last_error IS NOT NULL AND e.delivered IS NULL "
                "GROUP BY e.endpoint_id)"
            )
        last = {r["endpoint_id"]: (r["last_error"], maybe_datetime(r["at"])) for r in errors}
        return {
            r["endpoint_id"]: EndpointStatus(
                r["endpoint_id"],
                int(r["waiting"]),
                int(r["delivered"]),
                int(r["failed"]),
                *last.get(r["endpoint_id"], (None, None)),
            )
            for r in rows
        }

    async def enqueue_test(self, endpoint_id: int, message_id: str, body: str) -> None:
        """A test event for one endpoint, whatever events it lists (no thread: no order)."""
        when = now()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO webhook_deliveries (endpoint_id, thread_id, message_id, type, "
                "body, created, next_attempt) VALUES ($1, NULL, $2, $3, $4, $5, $5)",
                endpoint_id,
                message_id,
                "webhook.test",
                body,
                when,
            )

    # -- the queue ---------------------------------------------------------------------------

    async def claim(
        self, at: datetime, lease_until: datetime, owner: str, limit: int, run: int = 20
    ) -> list[list[Delivery]]:
        """Lease up to ``limit`` runs: each the oldest open row of its endpoint and thread,
        with up to ``run - 1`` due rows that follow it in that line, in order.

        The lease is a compare-and-set on ``next_attempt``: a row another process leased a
        moment ago is no longer due, so its update matches nothing. The rows after a head
        cannot be claimed by anyone else (their head is open), so taking them along costs no
        order and saves a claim per message on a busy thread. A worker that dies mid-send
        leaves the lease to expire, and the rows go out again (at least once).
        """
        runs: list[list[Delivery]] = []
        async with self.db.transaction() as conn:
            for row in await conn.fetch(CLAIMABLE[self.db.dialect], at, limit):
                head = await conn.fetchrow(
                    "UPDATE webhook_deliveries SET next_attempt = $2, lease_owner = $3 "
                    f"WHERE id = $1 AND {OPEN} AND next_attempt <= $4 "
                    "RETURNING id, endpoint_id, thread_id",
                    row["id"],
                    lease_until,
                    owner,
                    at,
                )
                if head is None:
                    continue
                ids = [head["id"]]
                if head["thread_id"] is not None and run > 1:
                    followers = await conn.fetch(
                        "UPDATE webhook_deliveries SET next_attempt = $5, lease_owner = $6 "
                        "WHERE id IN (SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 "
                        f"AND thread_id = $2 AND id > $3 AND {OPEN} AND next_attempt <= $4 "
                        "ORDER BY id LIMIT $7) RETURNING id",
                        head["endpoint_id"],
                        head["thread_id"],
                        head["id"],
                        at,
                        lease_until,
                        owner,
                        run - 1,
                    )
                    ids += sorted(r["id"] for r in followers)
                marks = ", ".join(f"${i + 1}" for i in range(len(ids)))
                rows = await conn.fetch(
                    "SELECT d.id, d.endpoint_id, e.url, e.secret, d.message_id, d.type, d.body, "
                    "d.created, d.attempts FROM webhook_deliveries d "
                    f"JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id IN ({marks}) "
                    "ORDER BY d.id",
                    *ids,
                )
                runs.append(
                    [
                        Delivery(
                            r["id"],
                            r["endpoint_id"],
                            r["url"],
                            r["secret"],
                            r["message_id"],
                            r["type"],
                            r["body"],
                            maybe_datetime(r["created"]) or at,
                            r["attempts"],
                        )
                        for r in rows
                    ]
                )
        return runs

    async def release(self, delivery_ids: list[int], at: datetime) -> None:
        """Give leased rows back, due at ``at`` (the rest of a run that stopped early)."""
        if not delivery_ids:
            return
        marks = ", ".join(f"${i + 2}" for i in range(len(delivery_ids)))
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE webhook_deliveries SET next_attempt = $1, lease_owner = NULL "
                f"WHERE id IN ({marks}) AND {OPEN}",
                at,
                *delivery_ids,
            )

    async def next_due(self) -> datetime | None:
        async with self.db.read() as conn:
            value = await conn.fetchval(
                f"SELECT MIN(next_attempt) FROM webhook_deliveries WHERE {OPEN}"
            )
        return maybe_datetime(value)

    async def mark_delivered(self, delivery_id: int) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE webhook_deliveries SET delivered = $2, attempts = attempts + 1, "
                f"last_error = NULL, lease_owner = NULL WHERE id = $1 AND {OPEN}",
                delivery_id,
                now(),
            )

    async def retry_later(self, delivery_id: int, at: datetime, error: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE webhook_deliveries SET next_attempt = $2, attempts = attempts + 1, "
                f"lease_owner = NULL, last_error = $3 WHERE id = $1 AND {OPEN}",
                delivery_id,
                at,
                error[:1000],
            )

    async def mark_failed(self, delivery_id: int, error: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE webhook_deliveries SET failed = $2, attempts = attempts + 1, "
                f"lease_owner = NULL, last_error = $3 WHERE id = $1 AND {OPEN}",
                delivery_id,
                now(),
                error[:1000],
            )

    async def prune(self, before: datetime) -> int:
        """Forget rows delivered or given up before ``before`` (private bodies hold e-mails)."""
        async with self.db.transaction() as conn:
            rows = await conn.fetch(
                "DELETE FROM webhook_deliveries WHERE delivered < $1 OR failed < $1 RETURNING id",
                before,
            )
        return len(rows)
