"""The mail queue, spent one-time links and reply subscriptions: every mail query lives here.

The queue is the durable half of sending mail: a notification is a row first and a message
on the wire later, so a down mail server, a crash or a restart delays mail and loses none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from db.database import Database, Row
from db.models import maybe_datetime, now

MAIL_COLUMNS = "id, dedupe, recipient, subject, body, headers, attempts, next_attempt"
OPEN = "sent IS NULL AND failed IS NULL"


@dataclass(frozen=True)
class OutgoingMail:
    """A message to queue. ``dedupe`` names it, so queuing it twice queues it once."""

    dedupe: str
    recipient: str
    subject: str
    body: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class QueuedMail:
    id: int
    dedupe: str
    recipient: str
    subject: str
    body: str
    headers: dict[str, str]
    attempts: int

    @classmethod
    def from_row(cls, row: Row) -> QueuedMail:
        return cls(
            row["id"],
            row["dedupe"],
            row["recipient"],
            row["subject"],
            row["body"],
            json.loads(row["headers"] or "{}"),
            row["attempts"],
        )


@dataclass(frozen=True)
class QueueStatus:
    waiting: int
    sent: int
    failed: int
    oldest_waiting: datetime | None


@dataclass(frozen=True)
class Subscription:
    id: int
    comment_id: int
    email: str
    confirmed: datetime | None
    unsubscribed: datetime | None

    @property
    def active(self) -> bool:
        return self.confirmed is not None and self.unsubscribed is None

    @classmethod
    def from_row(cls, row: Row) -> Subscription:
        return cls(
            row["id"],
            row["comment_id"],
            row["email"],
            maybe_datetime(row["confirmed"]),
            maybe_datetime(row["unsubscribed"]),
        )


SUBSCRIPTION_COLUMNS = "id, comment_id, email, confirmed, unsubscribed"


class MailStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- the queue ---------------------------------------------------------------------------

    async def enqueue(self, *mails: OutgoingMail) -> int:
        """Queue ``mails`` in one transaction; returns how many were new (a ``dedupe`` seen
        before queues nothing)."""
        when = now()
        queued = 0
        async with self.db.transaction() as conn:
            for mail in mails:
                row = await conn.fetchrow(
                    "INSERT INTO mail_queue (dedupe, recipient, subject, body, headers, "
                    "created, next_attempt) VALUES ($1, $2, $3, $4, $5, $6, $6) "
                    "ON CONFLICT (dedupe) DO NOTHING RETURNING id",
                    mail.dedupe,
                    mail.recipient,
                    mail.subject,
                    mail.body,
                    json.dumps(mail.headers, ensure_ascii=False),
                    when,
                )
                queued += row is not None
        return queued

    async def claim(self, at: datetime, lease_until: datetime, owner: str) -> QueuedMail | None:
        """Take the oldest mail due at ``at``, leasing it until ``lease_until``.

        The lease is a compare-and-set on ``next_attempt``: of several processes claiming the
        same row, one update matches and the others find it no longer due. A sender that
        dies mid-send leaves the lease to expire, and the mail goes out on a later round.
        """
        async with self.db.transaction() as conn:
            for row in await conn.fetch(
                f"SELECT id FROM mail_queue WHERE {OPEN} AND next_attempt <= $1 "
                "ORDER BY next_attempt, id LIMIT 5",
                at,
            ):
                claimed = await conn.fetchrow(
                    f"UPDATE mail_queue SET next_attempt = $2, lease_owner = $4 "
                    f"WHERE id = $1 AND {OPEN} AND next_attempt <= $3 RETURNING {MAIL_COLUMNS}",
                    row["id"],
                    lease_until,
                    at,
                    owner,
                )
                if claimed is not None:
                    return QueuedMail.from_row(claimed)
        return None

    async def release_leases(self, owner: str, at: datetime) -> int:
        """Make ``owner``'s leased mails due at ``at`` again.

        A sender calls this when it is sending nothing: a lease it still holds then belongs
        to a claim whose answer was lost (the connection broke after the commit), and the
        mail should not wait for the lease to run out.
        """
        async with self.db.transaction() as conn:
            rows = await conn.fetch(
                f"UPDATE mail_queue SET next_attempt = $2 WHERE lease_owner = $1 AND {OPEN} "
                "AND next_attempt > $2 RETURNING id",
                owner,
                at,
            )
        return len(rows)

    async def next_due(self) -> datetime | None:
        async with self.db.read() as conn:
            value = await conn.fetchval(f"SELECT MIN(next_attempt) FROM mail_queue WHERE {OPEN}")
        return maybe_datetime(value)

    async def mark_sent(self, mail_id: int) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE mail_queue SET sent = $2, attempts = attempts + 1, last_error = NULL, "
                "lease_owner = NULL "
                "WHERE id = $1",
                mail_id,
                now(),
            )

    async def retry_later(self, mail_id: int, at: datetime, error: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE mail_queue SET next_attempt = $2, attempts = attempts + 1, "
                "lease_owner = NULL, last_error = $3 WHERE id = $1",
                mail_id,
                at,
                error[:1000],
            )

    async def mark_failed(self, mail_id: int, error: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE mail_queue SET failed = $2, attempts = attempts + 1, last_error = $3, "
                "lease_owner = NULL "
                "WHERE id = $1",
                mail_id,
                now(),
                error[:1000],
            )

    async def status(self) -> QueueStatus:
        async with self.db.read() as conn:
            row = await conn.fetchrow(
                f"SELECT COUNT(*) FILTER (WHERE {OPEN}) AS waiting, "
                "COUNT(*) FILTER (WHERE sent IS NOT NULL) AS sent, "
                "COUNT(*) FILTER (WHERE failed IS NOT NULL) AS failed, "
                f"MIN(created) FILTER (WHERE {OPEN}) AS oldest FROM mail_queue"
            )
        assert row is not None
        return QueueStatus(
            int(row["waiting"]), int(row["sent"]), int(row["failed"]), maybe_datetime(row["oldest"])
        )

    async def prune(self, done_before: datetime, links_before: datetime) -> int:
        """Forget mail sent or failed before ``done_before`` (bodies of staff mails hold
        client addresses) and spent links older than any link can live."""
        async with self.db.transaction() as conn:
            rows = await conn.fetch(
                "DELETE FROM mail_queue WHERE sent < $1 OR failed < $1 RETURNING id", done_before
            )
            await conn.execute("DELETE FROM mail_links_used WHERE used < $1", links_before)
        return len(rows)

    # -- one-time links ----------------------------------------------------------------------

    async def link_used(self, nonce: str) -> bool:
        async with self.db.read() as conn:
            return (
                await conn.fetchval("SELECT 1 FROM mail_links_used WHERE nonce = $1", nonce)
                is not None
            )

    async def spend_link(self, nonce: str) -> bool:
        """Record ``nonce`` as used; False when it had been used already."""
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO mail_links_used (nonce, used) VALUES ($1, $2) "
                "ON CONFLICT (nonce) DO NOTHING RETURNING nonce",
                nonce,
                now(),
            )
        return row is not None

    # -- reply subscriptions -----------------------------------------------------------------

    async def subscribe(self, comment_id: int, email: str) -> Subscription:
        """The subscription for ``comment_id``, created unconfirmed when there is none."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO reply_subscriptions (comment_id, email, created) "
                "VALUES ($1, $2, $3) ON CONFLICT (comment_id) DO NOTHING",
                comment_id,
                email,
                now(),
            )
            row = await conn.fetchrow(
                f"SELECT {SUBSCRIPTION_COLUMNS} FROM reply_subscriptions WHERE comment_id = $1",
                comment_id,
            )
        assert row is not None
        return Subscription.from_row(row)

    async def subscription(self, subscription_id: int) -> Subscription | None:
        async with self.db.read() as conn:
            row = await conn.fetchrow(
                f"SELECT {SUBSCRIPTION_COLUMNS} FROM reply_subscriptions WHERE id = $1",
                subscription_id,
            )
        return Subscription.from_row(row) if row else None

    async def subscription_of(self, comment_id: int) -> Subscription | None:
        async with self.db.read() as conn:
            row = await conn.fetchrow(
                f"SELECT {SUBSCRIPTION_COLUMNS} FROM reply_subscriptions WHERE comment_id = $1",
                comment_id,
            )
        return Subscription.from_row(row) if row else None

    async def confirm(self, subscription_id: int) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE reply_subscriptions SET confirmed = COALESCE(confirmed, $2) WHERE id = $1",
                subscription_id,
                now(),
            )

    async def unsubscribe(self, subscription_id: int) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE reply_subscriptions SET unsubscribed = COALESCE(unsubscribed, $2) "
                "WHERE id = $1",
                subscription_id,
                now(),
            )

    # -- what a mail needs to say ------------------------------------------------------------

    async def thread_of(self, thread_id: int) -> tuple[str, str | None]:
        """The thread's uri and title."""
        async with self.db.read() as conn:
            row = await conn.fetchrow("SELECT uri, title FROM threads WHERE id = $1", thread_id)
        assert row is not None
        return row["uri"], row["title"]
