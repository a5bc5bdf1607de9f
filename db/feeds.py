"""The reads behind the Atom feeds: the newest approved comments, of the site or one thread.

Only ``approved`` rows are ever selected here, so a feed cannot leak a held, spam or deleted
comment, whatever the caller does with the result. ``changed`` answers "when did the feed
last change": the newest event (every change readers can see writes one, removals included),
or the newest comment when there are no events (imported data).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from db.comments import COLUMNS, FROM, find_thread
from db.database import Database, Row
from db.models import Comment, Thread, as_datetime


@dataclass(frozen=True)
class FeedEntry:
    comment: Comment
    uri: str
    thread_title: str | None


@dataclass(frozen=True)
class Feed:
    entries: list[FeedEntry]
    changed: datetime | None


class FeedStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def site(self, limit: int) -> Feed:
        """The newest approved comments of every thread, newest first."""
        async with self.db.read() as conn:
            rows = await conn.fetch(
                f"SELECT {COLUMNS}, t.uri AS thread_uri, t.title AS thread_title {FROM} "
                "JOIN threads t ON t.id = c.thread_id WHERE c.status = 'approved' "
                "ORDER BY c.created DESC, c.id DESC LIMIT $1",
                limit,
            )
            changed = await conn.fetchval("SELECT MAX(created) FROM events")
        return _feed(rows, changed)

    async def thread(self, uri: str, limit: int) -> tuple[Thread, Feed] | None:
        """The newest approved comments of the thread at ``uri`` (or an alias of it)."""
        async with self.db.read() as conn:
            thread = await find_thread(conn, uri)
            if thread is None:
                return None
            rows = await conn.fetch(
                f"SELECT {COLUMNS}, t.uri AS thread_uri, t.title AS thread_title {FROM} "
                "JOIN threads t ON t.id = c.thread_id "
                "WHERE c.thread_id = $1 AND c.status = 'approved' "
                "ORDER BY c.created DESC, c.id DESC LIMIT $2",
                thread.id,
                limit,
            )
            changed = await conn.fetchval(
                "SELECT COALESCE((SELECT MAX(created) FROM events WHERE thread_id = $1), "
                "(SELECT created FROM threads WHERE id = $1))",
                thread.id,
            )
        return thread, _feed(rows, changed)


def _feed(rows: list[Row], changed: object) -> Feed:
    entries = [FeedEntry(Comment.from_row(r), r["thread_uri"], r["thread_title"]) for r in rows]
    moments = [as_datetime(changed)] if changed is not None else []
    moments += [e.comment.edited or e.comment.created for e in entries]
    return Feed(entries, max(moments) if moments else None)
