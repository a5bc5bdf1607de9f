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

# The head of each (endpoint, thread) line that is due, earliest due first. The head test is
# a scalar subquery (the line's lowest open id, one probe of webhook_deliveries_open) rather
# than NOT EXISTS: on a young table PostgreSQL planned that as an anti-join that scanned the
# whole open index for every due row, 2 s a claim with 3,000 rows waiting. Ordering by
# next_attempt alone lets both engines read the due index in order and stop at the LIMIT.
# A row without a thread (a test event) is a line of its own. PostgreSQL skips rows another
# process is claiming this instant; SQLite has one writer, so it needs nothing more.
_CLAIMABLE = (
    "SELECT d.id, d.endpoint_id, d.thread_id FROM webhook_deliveries d "
    "WHERE d.delivered IS NULL AND d.failed IS NULL AND d.next_attempt <= $1 "
    "AND (d.thread_id IS NULL OR d.id = (SELECT p.id FROM webhook_deliveries p "
    "WHERE p.endpoint_id = d.endpoint_id AND p.thread_id = d.thread_id "
    "AND p.delivered IS NULL AND p.failed IS NULL "
    "ORDER BY p.endpoint_id, p.thread_id, p.id LIMIT 1)) "
    "ORDER BY d.next_attempt LIMIT $2"
)
CLAIMABLE = {"postgres": _CLAIMABLE + " FOR UPDATE OF d SKIP LOCKED", "sqlite": _CLAIMABLE}


def _marks(values: Sequence[object], first: int = 2) -> str:
    """``$2, $3, ...``: one placeholder per value, after the statement's own ``$1``."""
    return ", ".join(f"${i + first}" for i in range(len(values)))


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


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed run, in order: its first rows taken by the receiver, then
    at most one that failed (due again at ``retry_at``, or given up when that is None), and
    the rest handed back unsent (due at once: they wait behind the failed one anyway)."""

    delivered: list[int]
    released: list[int]
    failed: int | None = None
    error: str | None = None
    retry_at: datetime | None = None


# An endpoint that is live and lists the event type given as {type}: enqueue queues a row for
# each; WANTED asks whether there is any (a comment nobody listens for is stored in one
# statement).
LISTENING = "deleted IS NULL AND events LIKE '%,' || {type} || ',%'"
WANTED = f"EXISTS (SELECT 1 FROM webhook_endpoints WHERE {LISTENING})"


async def enqueue(conn: Connection, events: Sequence[QueuedEvent]) -> int:
    """Queue each event for every live endpoint that lists its type, in the caller's
    transaction; how many rows were queued. One statement per event whatever the number of
    endpoints."""
    when = now()
    queued = 0
    for event in events:
        rows = await conn.fetch(
            "INSERT INTO webhook_deliveries (endpoint_id, thread_id, message_id, type, body, "
            "created, next_attempt) "
            "SELECT id, $1, $2, $3, CASE WHEN private = 1 THEN $5 ELSE $4 END, $6, $6 "
            f"FROM webhook_endpoints WHERE {LISTENING.format(type='$3')} ORDER BY id "
            "RETURNING id",
            event.thread_id,
            event.message_id,
            event.type,
            event.public_body,
            event.private_body,
            when,
        )
        queued += len(rows)
    return queued


async def _record(conn: Connection, outcomes: Sequence[Outcome], at: datetime, owner: str) -> None:
    """What became of any number of sent runs, in the caller's transaction: one statement
    for every row delivered, one for every row handed back, one per failed row. Each only
    touches rows still open, so a row written twice is not counted twice; a row handed back
    or failed only while ``owner`` still holds its lease (written late, after the lease ran
    out and another process took the line, it would make the line due twice at once)."""
    delivered = [i for o in outcomes for i in o.delivered]
    released = [i for o in outcomes for i in o.released]
    if delivered:
        await conn.execute(
            "UPDATE webhook_deliveries SET delivered = $1, attempts = attempts + 1, "
            f"last_error = NULL, lease_owner = NULL WHERE id IN ({_marks(delivered)}) "
            f"AND {OPEN}",
            at,
            *delivered,
        )
    if released:
        await conn.execute(
            "UPDATE webhook_deliveries SET next_attempt = $1, lease_owner = NULL "
            f"WHERE id IN ({_marks(released, 3)}) AND {OPEN} AND lease_owner = $2",
            at,
            owner,
            *released,
        )
    for o in outcomes:
        if o.failed is None:
            continue
        # Retried: due again at retry_at. Given up (no retry_at): failed now.
        column = "next_attempt" if o.retry_at is not None else "failed"
        await conn.execute(
            f"UPDATE webhook_deliveries SET {column} = $2, attempts = attempts + 1, "
            f"lease_owner = NULL, last_error = $3 WHERE id = $1 AND {OPEN} "
            "AND lease_owner = $4",
            o.failed,
            o.retry_at or at,
            (o.error or "")[:1000],
            owner,
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
        self,
        at: datetime,
        lease_until: datetime,
        owner: str,
        limit: int,
        run: int = 20,
        finished: Sequence[Outcome] = (),
    ) -> list[list[Delivery]]:
        """Record the ``finished`` runs (:meth:`record`), then lease up to ``limit`` runs:
        each the oldest open row of its endpoint and thread, with up to ``run - 1`` due rows
        that follow it in that line, in order. One transaction for both, so a busy worker
        writes once per round, and a line whose run was just delivered is claimable again
        at once.

        The lease moves ``next_attempt`` past now: a row another process leased a moment
        ago is no longer due. A head found by :data:`CLAIMABLE` is still open and due when
        its line is leased (SQLite: one writer, and this is its transaction; PostgreSQL: the
        head is locked ``FOR UPDATE`` and re-checked); its line's due rows are read from the
        open index, and one statement leases every line found. The rows after a head cannot
        be claimed by anyone else (their head is open), so taking them along costs no order
        and saves a claim per message on a busy thread. The endpoints' URLs and secrets are
        read once for the whole claim. A worker that dies mid-send leaves the lease to
        expire, and the rows go out again (at least once).
        """
        async with self.db.transaction() as conn:
            await _record(conn, finished, at, owner)
            heads = await conn.fetch(CLAIMABLE[self.db.dialect], at, limit) if limit else []
            ids: list[int] = []
            for head in heads:
                if head["thread_id"] is None:  # a test event: a line of its own
                    ids.append(head["id"])
                    continue
                # The ORDER BY names the open index's columns: with no statistics yet (a
                # young table) PostgreSQL would otherwise scan another index for them.
                line = await conn.fetch(
                    "SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 "
                    f"AND thread_id = $2 AND id >= $3 AND {OPEN} AND next_attempt <= $4 "
                    "ORDER BY endpoint_id, thread_id, id LIMIT $5",
                    head["endpoint_id"],
                    head["thread_id"],
                    head["id"],
                    at,
                    run,
                )
                ids += [r["id"] for r in line]
            rows = (
                await conn.fetch(
                    "UPDATE webhook_deliveries SET next_attempt = $1, lease_owner = $2 "
                    f"WHERE id IN ({_marks(ids, 4)}) AND {OPEN} AND next_attempt <= $3 "
                    "RETURNING id, endpoint_id, thread_id, message_id, type, body, created, "
                    "attempts",
                    lease_until,
                    owner,
                    at,
                    *ids,
                )
                if ids
                else []
            )
            leased: dict[tuple[int, int], list[Row]] = {}
            for r in sorted(rows, key=lambda r: int(r["id"])):
                thread = r["thread_id"]
                line_key = (r["endpoint_id"], -r["id"] if thread is None else thread)
                leased.setdefault(line_key, []).append(r)
            endpoints = list({r["endpoint_id"] for r in rows})
            marks = _marks(endpoints, 1)
            targets = {
                e["id"]: (e["url"], e["secret"])
                for e in (
                    await conn.fetch(
                        f"SELECT id, url, secret FROM webhook_endpoints WHERE id IN ({marks})",
                        *endpoints,
                    )
                    if endpoints
                    else []
                )
            }
        return [
            [
                Delivery(
                    r["id"],
                    r["endpoint_id"],
                    *targets[r["endpoint_id"]],
                    r["message_id"],
                    r["type"],
                    r["body"],
                    maybe_datetime(r["created"]) or at,
                    r["attempts"],
                )
                for r in line_rows
            ]
            for line_rows in leased.values()
        ]

    async def record(self, outcomes: Sequence[Outcome], at: datetime, owner: str) -> None:
        """Write what became of sent runs (at shutdown; a running worker does it in
        :meth:`claim`)."""
        async with self.db.transaction() as conn:
            await _record(conn, outcomes, at, owner)

    async def next_due(self) -> datetime | None:
        """When the earliest open row is due: a one-row read of the due index, on SQLite
        without a hop to a reader thread (the worker asks after every round)."""
        row = await self.db.lookup(
            f"SELECT MIN(next_attempt) AS due FROM webhook_deliveries WHERE {OPEN}"
        )
        return maybe_datetime(row["due"]) if row else None

    async def prune(self, before: datetime) -> int:
        """Forget rows delivered or given up before ``before`` (private bodies hold e-mails)."""
        async with self.db.transaction() as conn:
            rows = await conn.fetch(
                "DELETE FROM webhook_deliveries WHERE delivered < $1 OR failed < $1 RETURNING id",
                before,
            )
        return len(rows)
