"""A commenter's own data: every comment written with one e-mail address, and its erasure.

Erasure keeps each comment's row (so replies keep their place and ids stay stable) but
empties everything that identifies or was written by the person: e-mail, client address,
website, name (a neutral placeholder), SSO user id and text; the comment becomes ``deleted``.
Each thread is changed in its own transaction with its events, exactly as a moderation
change: readers see the comment go, or turn into a placeholder where replies hang from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from db.comments import (
    COLUMNS,
    FROM,
    diff_events,
    lock_thread,
    record_events,
    visible_states,
)
from db.database import Connection, Database
from db.models import Comment, Event


@dataclass(frozen=True)
class OwnComment:
    comment: Comment
    uri: str


@dataclass(frozen=True)
class Erasure:
    """What an erasure changed: how many comments, readers' events, and the held comments
    it took out of the moderation queue (open queues drop them)."""

    count: int
    events: list[Event]
    was_pending: list[int]


async def _thread_states(conn: Connection, thread_id: int) -> dict[int, str]:
    """What readers see of the whole thread (an erasure may touch any of its comments)."""
    rows = await conn.fetch(
        "SELECT id, parent_id, status FROM comments WHERE thread_id = $1", thread_id
    )
    return visible_states((r["id"], r["parent_id"], r["status"]) for r in rows)


class PrivacyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def comments_of(self, email: str) -> list[OwnComment]:
        """Every comment with this e-mail address (any case), in every status, oldest first."""
        async with self.db.read() as conn:
            rows = await conn.fetch(
                f"SELECT t.uri AS thread_uri, {COLUMNS} {FROM} "
                "JOIN threads t ON t.id = c.thread_id "
                "WHERE lower(c.email) = lower($1) ORDER BY c.created, c.id",
                email,
            )
        return [OwnComment(Comment.from_row(r), r["thread_uri"]) for r in rows]

    async def has_comments(self, email: str) -> bool:
        async with self.db.read() as conn:
            found = await conn.fetchval(
                "SELECT 1 FROM comments WHERE lower(email) = lower($1) LIMIT 1", email
            )
        return found is not None

    async def erase(self, email: str, placeholder: str) -> Erasure:
        """Erase every comment with this address."""
        if not email.strip():
            return Erasure(0, [], [])  # comments without an address are nobody's to erase
        async with self.db.read() as conn:
            rows = await conn.fetch(
                "SELECT thread_id, id, status FROM comments WHERE lower(email) = lower($1)", email
            )
        erased, events = 0, []
        was_pending = sorted(r["id"] for r in rows if r["status"] == "pending")
        for thread_id in sorted({r["thread_id"] for r in rows}):
            async with self.db.transaction() as conn:
                await lock_thread(conn, thread_id)
                before = await _thread_states(conn, thread_id)
                ids = await conn.fetch(
                    "UPDATE comments SET email = '', address = NULL, website = NULL, "
                    "author = $3, text = '', html = '', sso_sub = NULL, text_key = NULL, "
                    "status = 'deleted' "
                    "WHERE thread_id = $1 AND lower(email) = lower($2) RETURNING id",
                    thread_id,
                    email,
                    placeholder,
                )
                after = await _thread_states(conn, thread_id)
                events.extend(await record_events(conn, thread_id, diff_events(before, after)))
            erased += len(ids)
        async with self.db.transaction() as conn:
            # Reply notifications keep the address too; they go with the comments, and so do
            # mails already delivered to it (one still waiting is left to be sent).
            await conn.execute(
                "DELETE FROM reply_subscriptions WHERE lower(email) = lower($1)", email
            )
            await conn.execute(
                "DELETE FROM mail_queue WHERE lower(recipient) = lower($1) "
                "AND (sent IS NOT NULL OR failed IS NOT NULL)",
                email,
            )
        return Erasure(erased, events, was_pending)
