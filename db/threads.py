"""Big threads in the database: the thread's light index for paging, pins and closing.

Paging reads one small row per comment (ids, parent, status, date, pin, counts) and the
thread's version in one statement; the full rows of one page are read afterwards by id.
Pins and closing are changes readers must see, so each writes its event in the same
transaction (:func:`db.comments.record_events`), exactly like comment changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db.comments import COLUMNS, FROM, UnknownComment, lock_thread, record_events
from db.database import Connection, Database, in_list
from db.models import Comment, Event, as_datetime, now

# Thread events name no comment; the events table keeps comment_id NOT NULL, so they carry 0.
NO_COMMENT = 0


@dataclass(frozen=True)
class IndexEntry:
    """What paging needs to know of one comment, without its text."""

    id: int
    parent_id: int | None
    status: str
    created: datetime
    pinned: bool
    up: int
    down: int

    @property
    def score(self) -> int:
        return self.up - self.down


@dataclass(frozen=True)
class ThreadIndex:
    """Every comment of a thread (all statuses) and the version they were read at."""

    thread_id: int
    last_seq: int
    votes_seq: int
    closed: bool
    entries: tuple[IndexEntry, ...]

    @property
    def version(self) -> tuple[int, int]:
        return (self.last_seq, self.votes_seq)


@dataclass(frozen=True)
class ThreadSummary:
    """One thread as the admin lists it."""

    id: int
    uri: str
    title: str | None
    closed: bool
    approved: int
    up: int
    down: int
    pinned: int


class NotPinnable(Exception):
    """Only an approved top-level comment can be pinned."""


# Runs inside the transaction that closed a thread (after its row lock), so whatever it writes
# commits with the change, in the thread's commit order: (connection, thread id, its uri).
ClosedWriter = Callable[[Connection, int, str], Awaitable[None]]


class ThreadStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.closed_outbox: list[ClosedWriter] = []
        # Called after a commit that wrote the closed outbox (the webhook worker's wake).
        self.outbox_committed: list[Callable[[], None]] = []

    def _outbox_written(self) -> None:
        if self.closed_outbox:
            for wake in self.outbox_committed:
                wake()

    async def index(self, thread_id: int) -> ThreadIndex | None:
        """The thread's index and version from one statement (one snapshot on both engines)."""
        async with self.db.read() as conn:
            rows = await conn.fetch(
                "SELECT t.last_seq, t.votes_seq, t.closed, c.id, c.parent_id, c.status, "
                "c.created, c.pinned, c.up, c.down FROM threads t "
                "LEFT JOIN comments c ON c.thread_id = t.id WHERE t.id = $1",
                thread_id,
            )
        if not rows:
            return None
        first = rows[0]
        entries = tuple(
            IndexEntry(
                r["id"],
                r["parent_id"],
                r["status"],
                as_datetime(r["created"]),
                bool(r["pinned"]),
                r["up"],
                r["down"],
            )
            for r in rows
            if r["id"] is not None
        )
        return ThreadIndex(
            thread_id,
            int(first["last_seq"]),
            int(first["votes_seq"]),
            first["closed"] == 1,
            entries,
        )

    async def comments(self, ids: Iterable[int]) -> dict[int, Comment]:
        """Full rows by id, in chunks that stay under both engines' parameter limits."""
        wanted = sorted(set(ids))
        found: dict[int, Comment] = {}
        async with self.db.read() as conn:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks, padded = in_list(chunk)
                rows = await conn.fetch(f"SELECT {COLUMNS} {FROM} WHERE c.id IN ({marks})", *padded)
                found.update((r["id"], Comment.from_row(r)) for r in rows)
        return found

    async def set_closed(self, thread_id: int, closed: bool) -> list[Event]:
        """Close or open a thread; an actual change writes ``thread.closed``/``thread.opened``."""
        async with self.db.transaction() as conn:
            await lock_thread(conn, thread_id)
            before = await conn.fetchval("SELECT closed FROM threads WHERE id = $1", thread_id)
            if before != (1 if closed else 0):  # a decision, even undecided → open: its time
                await conn.execute(
                    "UPDATE threads SET closed = $2, closed_at = $3 WHERE id = $1",
                    thread_id,
                    1 if closed else 0,
                    now(),
                )
            if (before == 1) == closed:
                return []
            kind = "thread.closed" if closed else "thread.opened"
            events = await record_events(conn, thread_id, [(kind, NO_COMMENT)])
            if closed:
                await self._closed(conn, thread_id)
        if closed:
            self._outbox_written()
        return events

    async def _closed(self, conn: Connection, thread_id: int) -> None:
        if self.closed_outbox:
            uri = str(await conn.fetchval("SELECT uri FROM threads WHERE id = $1", thread_id))
            for write in self.closed_outbox:
                await write(conn, thread_id, uri)

    async def close_due(self, opened_before: datetime) -> list[Event]:
        """Close every undecided thread that started before ``opened_before``.

        A post's thread starts at the post's date, another thread at its first comment.
        Only threads nobody decided about (``closed IS NULL``) are touched, so a thread staff
        reopened stays open.
        """
        async with self.db.read() as conn:
            rows = await conn.fetch(
                "SELECT t.id FROM threads t LEFT JOIN posts p ON p.thread_id = t.id "
                "WHERE t.closed IS NULL AND COALESCE(p.published, "
                "(SELECT MIN(c.created) FROM comments c WHERE c.thread_id = t.id)) < $1",
                opened_before,
            )
        events: list[Event] = []
        for row in rows:
            async with self.db.transaction() as conn:
                await lock_thread(conn, row["id"])
                changed = await conn.fetchval(
                    "UPDATE threads SET closed = 1, closed_at = $2 "
                    "WHERE id = $1 AND closed IS NULL RETURNING id",
                    row["id"],
                    now(),
                )
                if changed is not None:
                    events += await record_events(conn, row["id"], [("thread.closed", NO_COMMENT)])
                    await self._closed(conn, row["id"])
            if changed is not None:
                self._outbox_written()
        return events

    async def set_pinned(self, comment_id: int, pinned: bool) -> tuple[Comment, list[Event]]:
        """Pin or unpin an approved top-level comment; readers get ``comment.updated``."""
        async with self.db.transaction() as conn:
            thread_id = await conn.fetchval(
                "SELECT thread_id FROM comments WHERE id = $1", comment_id
            )
            if thread_id is None:
                raise UnknownComment(str(comment_id))
            await lock_thread(conn, thread_id)
            row: Any = await conn.fetchrow(f"SELECT {COLUMNS} {FROM} WHERE c.id = $1", comment_id)
            current = Comment.from_row(row)
            if pinned and (current.status != "approved" or current.parent_id is not None):
                raise NotPinnable(str(comment_id))
            events: list[Event] = []
            if current.pinned != pinned:
                await conn.execute(
                    "UPDATE comments SET pinned = $2 WHERE id = $1", comment_id, 1 if pinned else 0
                )
                if current.status == "approved":
                    events = await record_events(conn, thread_id, [("comment.updated", comment_id)])
            row = await conn.fetchrow(f"SELECT {COLUMNS} {FROM} WHERE c.id = $1", comment_id)
        return Comment.from_row(row), events

    async def post_slug(self, thread_id: int) -> str | None:
        """The slug of the kibitz post whose thread this is (None for embedded threads)."""
        async with self.db.read() as conn:
            value = await conn.fetchval("SELECT slug FROM posts WHERE thread_id = $1", thread_id)
        return None if value is None else str(value)

    async def listing(self, *, limit: int = 100, offset: int = 0) -> list[ThreadSummary]:
        """Threads with their approved comments, votes and state, newest activity first."""
        async with self.db.read() as conn:
            rows = await conn.fetch(
                "SELECT t.id, t.uri, t.title, t.closed, "
                "COUNT(c.id) AS approved, COALESCE(SUM(c.up), 0) AS up, "
                "COALESCE(SUM(c.down), 0) AS down, COALESCE(SUM(c.pinned), 0) AS pinned "
                "FROM threads t LEFT JOIN comments c ON c.thread_id = t.id "
                "AND c.status = 'approved' GROUP BY t.id, t.uri, t.title, t.closed "
                f"ORDER BY t.last_seq DESC, t.id DESC LIMIT {int(limit)} OFFSET {int(offset)}"
            )
        return [
            ThreadSummary(
                r["id"],
                r["uri"],
                r["title"],
                r["closed"] == 1,
                int(r["approved"]),
                int(r["up"]),
                int(r["down"]),
                int(r["pinned"]),
            )
            for r in rows
        ]
