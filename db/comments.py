"""Threads, comments and their events: every query about the discussion lives here.

The invariant the live channel and the read cache rely on: every change to what readers can
see of a thread writes event rows and bumps ``threads.last_seq`` in the same transaction
(:func:`record_events`). ``last_seq`` is therefore a version number of the visible thread.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from db.database import Connection, Database, Row, in_list
from db.errors import DatabaseError, Unavailable
from db.groupcommit import GroupCommit
from db.models import Comment, Event, Status, Thread, now

FIELDS = (
    "id",
    "thread_id",
    "parent_id",
    "author",
    "email",
    "website",
    "text",
    "html",
    "status",
    "reason",
    "address",
    "staff_id",
    "created",
    "edited",
    "source",
    "pinned",
    "up",
    "down",
    "version",
    "sso_sub",
)
INLINE_IDS = 32  # by_ids reads this many primary keys by the backend's cheapest path
COLUMNS = ", ".join(f"c.{name}" for name in FIELDS) + ", s.name AS staff_name"
FROM = "FROM comments c LEFT JOIN staff s ON s.id = c.staff_id"

# Whether a commenter had a comment approved before (first-time moderation), by e-mail
# address or by single sign-on user id; a POST asks with its other questions in one read
# (:mod:`db.screening`).
KNOWN_BY_EMAIL = (
    "SELECT 1 FROM comments WHERE lower(email) = lower({email}) AND status = 'approved' LIMIT 1"
)
KNOWN_BY_SUB = "SELECT 1 FROM comments WHERE sso_sub = {sub} AND status = 'approved' LIMIT 1"

# Plain strings for per-comment checks: a Status member lookup costs ~0.2 µs on Python 3.11.
APPROVED = Status.APPROVED.value


class UnknownThread(DatabaseError):
    """No thread has that uri and the caller may not create one."""


class InvalidParent(DatabaseError):
    """The parent is not an approved comment of the same thread."""


class ThreadClosed(DatabaseError):
    """The thread takes no new comments."""


class StaleVersion(DatabaseError):
    """The comment changed since the version the caller saw; nothing was changed."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the comment is at version {current} now")
        self.current = current


class UnknownComment(DatabaseError):
    """No comment has that id."""


class DuplicateSubmission(DatabaseError):
    """The submission's key was taken by an earlier (committed) submission; nothing was added."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass(frozen=True)
class Submission:
    """An idempotent submission: its key, a hash of its body and the status it answers."""

    key: str
    body_hash: str
    status: int


@dataclass(frozen=True)
class Submitted:
    """What an earlier submission under a key stored: compare the hash, answer the status."""

    key: str
    body_hash: str
    status: int
    comment_id: int | None


SUBMISSION_TTL = timedelta(hours=24)


@dataclass(frozen=True)
class Change:
    """A comment change as integrations see it, handed to outbox writers in its transaction.

    ``type`` is the webhook event: ``comment.created`` (published at once),
    ``comment.pending`` (held), ``comment.approved``, ``comment.updated``, ``comment.deleted``
    or ``comment.spam``. Readers' events (``events``) are a different, narrower log.
    """

    type: str
    comment: Comment
    uri: str


# Runs inside the writing transaction, after the thread's row lock is taken, so whatever it
# writes commits (or not) with the change, in the thread's commit order; returns how many rows
# it queued.
OutboxWriter = Callable[[Connection, list[Change]], Awaitable[int]]


@dataclass(frozen=True)
class Outbox:
    """An integration's outbox (webhooks): ``write`` queues its rows for changes in their
    transaction; ``wanted`` is SQL, true when ``write`` would queue a row for a change of the
    type given as ``{type}``, so that a comment no integration listens for can be stored in
    one statement (:meth:`CommentStore._insert_alone`)."""

    write: OutboxWriter
    wanted: str


# A commenter's edit that would be held is held again (approved -> pending): integrations
# get comment.pending, as for a new held comment, and comment.approved once staff approve it.
STATUS_EVENTS: dict[str, str] = {
    Status.PENDING: "comment.pending",
    Status.APPROVED: "comment.approved",
    Status.SPAM: "comment.spam",
    Status.DELETED: "comment.deleted",
}


def created_type(status: str) -> str:
    """The integration event of a new comment: ``comment.created`` when it is published at
    once, else its status's (held: ``comment.pending``; banned: stored as spam)."""
    return "comment.created" if status == APPROVED else STATUS_EVENTS.get(status, "comment.pending")


def change_of(old: Comment, new: Comment, edited: bool) -> str | None:
    """The integration event a change from ``old`` to ``new`` is, if any."""
    if old.status != new.status:
        return STATUS_EVENTS.get(new.status)
    return "comment.updated" if edited else None


@dataclass(frozen=True)
class NewComment:
    author: str
    email: str
    website: str | None
    text: str
    html: str
    status: str
    parent_id: int | None = None
    reason: str | None = None
    address: str | None = None
    staff_id: int | None = None
    created: datetime | None = None
    source: str | None = None
    sso_sub: str | None = None


def _written(new: NewComment) -> tuple[Any, ...]:
    """The columns every insert of a comment writes as given, in this order: author, email,
    website, text, html, status, reason, address, staff_id."""
    return (
        new.author,
        new.email,
        new.website,
        new.text,
        new.html,
        new.status,
        new.reason,
        new.address,
        new.staff_id,
    )


def text_key(text: str) -> str:
    """A short digest of a comment's trimmed text, for the duplicate check's indexed probe."""
    return hashlib.sha256(text.strip().encode()).hexdigest()[:16]


# -- visibility -------------------------------------------------------------------------------

FULL, PLACEHOLDER = "full", "placeholder"


def visible_states(rows: Iterable[tuple[int, int | None, str]]) -> dict[int, str]:
    """Map each comment a reader may see to ``full`` or ``placeholder``.

    Approved comments are shown in full. Any other comment is shown only as an empty
    placeholder, and only while something below it is shown, so replies keep their place.
    """
    parent_of: dict[int, int | None] = {}
    status_of: dict[int, str] = {}
    for cid, parent, status in rows:
        parent_of[cid], status_of[cid] = parent, status
    states = {cid: FULL for cid, status in status_of.items() if status == APPROVED}
    for cid in [c for c, s in states.items() if s == FULL]:
        parent = parent_of.get(cid)
        while parent is not None and parent in status_of and parent not in states:
            states[parent] = PLACEHOLDER
            parent = parent_of.get(parent)
    return states


# The comment and its ancestors up to and including the first approved one: a change to the
# comment's status can alter the visible state of these rows and of no other.
CHAIN = (
    "WITH RECURSIVE chain (id, parent_id, status, depth) AS ("
    " SELECT id, parent_id, status, 0 FROM comments WHERE id = $1"
    " UNION ALL SELECT c.id, c.parent_id, c.status, chain.depth + 1 FROM comments c"
    " JOIN chain ON c.id = chain.parent_id WHERE chain.depth = 0 OR chain.status <> 'approved')"
    " SELECT id, parent_id, status FROM chain ORDER BY depth"
)

# Whether any reply below a comment, at any depth, is approved; the walk stops below approved
# rows (one is enough) and at the first one found.
HAS_APPROVED_BELOW = (
    "WITH RECURSIVE below (id, status) AS ("
    " SELECT id, status FROM comments WHERE parent_id = $1"
    " UNION ALL SELECT c.id, c.status FROM comments c JOIN below ON c.parent_id = below.id"
    " WHERE below.status <> 'approved')"
    " SELECT 1 FROM below WHERE status = 'approved' LIMIT 1"
)


async def _chain_states(conn: Connection, comment_id: int) -> dict[int, str]:
    """:func:`visible_states` restricted to a comment and the ancestors its status can affect.

    A row's state depends only on its own status and on the rows below it, so changing one
    comment can change only its own state and its ancestors'. Above the first approved
    ancestor nothing can change (that ancestor keeps them all visible), so the walk stops
    there. The cost is the chain's length, not the thread's size; the subtree walks run only
    for rows that are not approved, which in practice means deleted or held parents.
    """
    rows = await conn.fetch(CHAIN, comment_id)
    states: dict[int, str] = {}
    below_shown = False  # whether the previous (lower) row of the chain is shown
    for row in rows:
        cid = int(row["id"])
        if row["status"] == APPROVED:
            states[cid] = FULL
        elif below_shown or await conn.fetchval(HAS_APPROVED_BELOW, cid) is not None:
            states[cid] = PLACEHOLDER
        below_shown = cid in states
    return states


def diff_events(
    before: dict[int, str], after: dict[int, str], edited: Iterable[int] = ()
) -> list[tuple[str, int]]:
    """The events that take a reader from the ``before`` view to the ``after`` view."""
    events: list[tuple[str, int]] = []
    for cid in sorted(set(before) | set(after)):
        old, new = before.get(cid), after.get(cid)
        if old is None and new is not None:
            events.append(("comment.approved", cid))
        elif old is not None and new is None:
            events.append(("comment.deleted", cid))
        elif old != new:
            events.append(("comment.approved" if new == FULL else "comment.updated", cid))
    for cid in edited:
        if after.get(cid) == FULL and before.get(cid) == FULL:
            events.append(("comment.updated", cid))
    return events


async def record_events(
    conn: Connection, thread: Thread | int, changes: Sequence[tuple[str, int]]
) -> list[Event]:
    """Write events and bump the thread's counter in the caller's transaction.

    The ``UPDATE … RETURNING`` takes the thread's row lock on PostgreSQL (SQLite has one
    writer), so a later seq can never commit before an earlier one of the same thread.
    """
    if not changes:
        return []
    thread_id = thread if isinstance(thread, int) else thread.id
    row = await conn.fetchrow(
        "UPDATE threads SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq, uri",
        thread_id,
        len(changes),
    )
    assert row is not None
    first = row["last_seq"] - len(changes) + 1
    when = now()
    events = [
        Event(thread_id, first + i, kind, cid, row["uri"]) for i, (kind, cid) in enumerate(changes)
    ]
    insert = (
        "INSERT INTO events (thread_id, seq, type, comment_id, created) VALUES ($1, $2, $3, $4, $5)"
    )
    if len(events) == 1:  # the common case, in one round trip
        e = events[0]
        await conn.execute(insert, e.thread_id, e.seq, e.type, e.comment_id, when)
    else:
        await conn.executemany(
            insert, [(e.thread_id, e.seq, e.type, e.comment_id, when) for e in events]
        )
    return events


# -- threads ------------------------------------------------------------------------------------

THREAD_BY_URI = (
    "SELECT id, uri, title, last_seq, closed, votes_seq FROM threads WHERE uri = $1 "
    "UNION ALL "
    "SELECT t.id, t.uri, t.title, t.last_seq, t.closed, t.votes_seq FROM thread_aliases a "
    "JOIN threads t ON t.id = a.thread_id WHERE a.uri = $1"
)


async def lock_thread(conn: Connection, thread_id: int) -> None:
    """Hold the thread's row lock until the transaction ends (a no-op write, both engines).

    A change reads the thread's visible state before and after to compute its events; two
    changes on one thread must not both read the same "before". Taking the lock first makes
    them queue on PostgreSQL (READ COMMITTED then shows each the other's committed rows);
    SQLite has one writer, so it holds already.
    """
    await conn.execute("UPDATE threads SET last_seq = last_seq WHERE id = $1", thread_id)


async def find_thread(conn: Connection, uri: str) -> Thread | None:
    row = await conn.fetchrow(THREAD_BY_URI, uri)
    return Thread.from_row(row) if row else None


async def ensure_thread(conn: Connection, uri: str, title: str | None = None) -> Thread:
    """Return the thread for ``uri`` (or its alias), creating it when there is none."""
    found = await find_thread(conn, uri)
    if found:
        return found
    await conn.execute(
        "INSERT INTO threads (uri, title, created) VALUES ($1, $2, $3) "
        "ON CONFLICT (uri) DO NOTHING",
        uri,
        title,
        now(),
    )
    created = await find_thread(conn, uri)
    assert created is not None
    return created


@dataclass(frozen=True)
class _Pending:
    uri: str
    new: NewComment
    create_thread: bool
    title: str | None
    submission: Submission | None = None


async def claim_submission(conn: Connection, submission: Submission) -> bool:
    """Take ``submission.key`` in the caller's transaction; ``False`` when it is taken.

    On PostgreSQL a concurrent transaction holding the same key makes this wait until that
    one ends: then the key is either taken (it committed) or free (it rolled back). A key
    older than :data:`SUBMISSION_TTL` is free again.
    """
    taken = await conn.fetchval(
        "INSERT INTO submissions (key, body_hash, status, comment_id, created) "
        "VALUES ($1, $2, $3, NULL, $4) "
        "ON CONFLICT (key) DO UPDATE SET body_hash = excluded.body_hash, "
        "status = excluded.status, comment_id = NULL, created = excluded.created "
        "WHERE submissions.created < $5 RETURNING key",
        submission.key,
        submission.body_hash,
        submission.status,
        now(),
        now() - SUBMISSION_TTL,
    )
    return taken is not None


Added = tuple[Comment, list[Event]]

# After a lone comment found an integration listening, comments take the transaction (which
# writes the outbox) for this many seconds before trying the one statement again.
OUTBOX_WANTED_PAUSE = 30.0

# PostgreSQL: a lone comment in one statement (CommentStore._insert_alone). Parameters: $1 uri,
# $2 parent, $3-$14 the comment's columns, $15-$17 the submission (key NULL: none), $18 when a
# key expires, $19 the outbox's change type. Every write depends on the thread's lock (lk) and
# the checks (ok); the claim and the comment depend on each other; the seq and the event on
# an approved comment. The one row returned always says whether an outbox wanted the change;
# its comment columns are NULL when nothing was stored.
# A transaction that only adds comments says so: it sends no change notice (migration 130),
# so new comments, most commits, do not serialise on PostgreSQL's notify queue. Kept answers
# show another process's new comment within db/notices.py's TRUST_FOR instead.
ADDING = "SELECT set_config('kibitz.adding', 'on', true) AS adding"

INSERT_ALONE = """
WITH t AS (
    SELECT id, last_seq FROM threads WHERE uri = $1
    UNION ALL SELECT th.id, th.last_seq FROM thread_aliases a
    JOIN threads th ON th.id = a.thread_id WHERE a.uri = $1
    LIMIT 1
),
hooks AS (SELECT ({wanted}) AS outbox_wanted, $19::text AS change_type),
lk AS (
    SELECT th.id, th.uri, th.last_seq FROM threads th, t, hooks
    WHERE th.id = t.id AND th.closed IS DISTINCT FROM 1 AND NOT hooks.outbox_wanted
    FOR UPDATE OF th
),
ok AS (
    SELECT lk.id, lk.uri FROM lk, t
    WHERE $2::bigint IS NULL OR (lk.last_seq = t.last_seq AND EXISTS (
        SELECT 1 FROM comments p WHERE p.id = $2 AND p.thread_id = lk.id
        AND p.status = 'approved'))
),
ids AS (SELECT nextval(pg_get_serial_sequence('comments', 'id')) AS id FROM ok),
claim AS (
    INSERT INTO submissions (key, body_hash, status, comment_id, created)
    SELECT $15, $16, $17, ids.id, $12 FROM ids WHERE $15::text IS NOT NULL
    ON CONFLICT (key) DO UPDATE SET body_hash = excluded.body_hash,
    status = excluded.status, comment_id = excluded.comment_id, created = excluded.created
    WHERE submissions.created < $18
    RETURNING key
),
c AS (
    INSERT INTO comments (id, thread_id, parent_id, author, email, website, text, html,
        status, reason, address, staff_id, created, text_key, sso_sub)
    SELECT ids.id, ok.id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14
    FROM ok, ids WHERE $15::text IS NULL OR EXISTS (SELECT 1 FROM claim)
    RETURNING {fields}
),
bump AS (
    UPDATE threads SET last_seq = threads.last_seq + 1 FROM c
    WHERE threads.id = c.thread_id AND c.status = 'approved'
    RETURNING threads.last_seq
),
e AS (
    INSERT INTO events (thread_id, seq, type, comment_id, created)
    SELECT c.thread_id, bump.last_seq, 'comment.created', c.id, $12 FROM c, bump
    RETURNING seq
),
-- Only adds a comment: no change notice (migration 130; db/notices.py).
adding AS ({adding})
SELECT hooks.outbox_wanted, stored.* FROM hooks CROSS JOIN adding LEFT JOIN (
    SELECT c.*, s.name AS staff_name, ok.uri, (SELECT seq FROM e) AS seq
    FROM c CROSS JOIN ok LEFT JOIN staff s ON s.id = c.staff_id
) stored ON true
"""


class CommentStore:
    """Reads and writes of comments, each write with its events in one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._adds: GroupCommit[str, _Pending, Added] = GroupCommit(self._add_batch)
        # SQLite has one writer, which serialises every transaction anyway: comments for any
        # thread share one queue, so comments spread over threads also share a commit (and
        # its disk flush). PostgreSQL writes threads in parallel: one queue per thread there.
        self._one_queue = db.dialect == "sqlite"
        # PostgreSQL stores a lone comment in one statement when it can (_insert_alone).
        self._alone = db.dialect == "postgres"
        self._outbox_wanted_until = 0.0  # until then, comments skip that statement
        self.outbox: list[Outbox] = []
        # Called after a commit that queued outbox rows (the webhook worker's wake).
        self.outbox_committed: list[Callable[[], None]] = []

    async def _write_outbox(self, conn: Connection, changes: list[Change]) -> int:
        queued = 0
        for outbox in self.outbox:
            queued += await outbox.write(conn, changes)
        return queued

    def _outbox_written(self, queued: int) -> None:
        if queued:
            for wake in self.outbox_committed:
                wake()

    # -- reads ---------------------------------------------------------------------------

    async def thread(self, uri: str) -> Thread | None:
        # Every cached thread read starts here, so it takes the backend's cheapest path.
        row = await self.db.lookup(THREAD_BY_URI, uri)
        return Thread.from_row(row) if row else None

    async def last_seq(self, thread_id: int) -> int:
        """The thread's version (0 for none), by the cheapest path: every cached page asks."""
        row = await self.db.lookup("SELECT last_seq FROM threads WHERE id = $1", thread_id)
        return int(row["last_seq"]) if row else 0

    async def cursor(self, uri: str) -> tuple[Thread | None, int]:
        thread = await self.thread(uri)
        return thread, thread.last_seq if thread else 0

    async def visible_with_cursor(self, thread_id: int) -> tuple[int, list[Comment]]:
        """The thread's ``last_seq`` and every comment a reader may see, from one snapshot.

        One statement reads both, so the comments are exactly the state named by the
        cursor: a reader that subscribes with ``since=cursor`` neither misses an event nor
        gets one for a comment it already has, and the thread cache may key the result by it.
        Non-approved rows are fetched only when they have replies, to decide placeholders;
        callers must shape them with the state from :func:`visible_states`.
        """
        async with self.db.read() as conn:
            rows = await conn.fetch(
                f"SELECT t.last_seq AS thread_last_seq, {COLUMNS} FROM threads t "
                "LEFT JOIN comments c ON c.thread_id = t.id AND (c.status = 'approved' "
                "OR EXISTS (SELECT 1 FROM comments r WHERE r.parent_id = c.id)) "
                "LEFT JOIN staff s ON s.id = c.staff_id "
                "WHERE t.id = $1 ORDER BY c.created, c.id",
                thread_id,
            )
        if not rows:
            return 0, []
        comments = [Comment.from_row(r) for r in rows if r["id"] is not None]
        states = visible_states((c.id, c.parent_id, c.status) for c in comments)
        return int(rows[0]["thread_last_seq"]), [c for c in comments if c.id in states]

    async def get(self, comment_id: int) -> Comment | None:
        async with self.db.read() as conn:
            row = await conn.fetchrow(f"SELECT {COLUMNS} {FROM} WHERE c.id = $1", comment_id)
        return Comment.from_row(row) if row else None

    async def uri_of(self, thread_id: int) -> str:
        async with self.db.read() as conn:
            return str(await conn.fetchval("SELECT uri FROM threads WHERE id = $1", thread_id))

    async def counts(self, uris: Sequence[str]) -> dict[str, int]:
        """Approved comments per uri (aliases resolve to their thread); unknown uris count 0.

        Uncached; the counts route goes through :class:`server.discussion.cache.CountCache`.
        """
        versions = await self.thread_versions(uris)
        counted = await self.approved_counts({tid for tid, _ in versions.values()})
        return {uri: counted[versions[uri][0]][1] if uri in versions else 0 for uri in uris}

    async def thread_versions(self, uris: Sequence[str]) -> dict[str, tuple[int, int]]:
        """``(thread id, last_seq)`` per known uri or alias, in one indexed read.

        ``last_seq`` names the thread's visible state, approved count included, so a count
        cached under it stays exact; unknown uris are simply absent.
        """
        if not uris:
            return {}
        marks, padded = in_list(uris)
        rows = await self.db.lookup_all(
            f"SELECT uri, id, last_seq FROM threads WHERE uri IN ({marks}) "
            "UNION ALL SELECT a.uri, t.id, t.last_seq FROM thread_aliases a "
            f"JOIN threads t ON t.id = a.thread_id WHERE a.uri IN ({marks})",
            *padded,
        )
        return {r["uri"]: (int(r["id"]), int(r["last_seq"])) for r in rows}

    async def approved_counts(self, thread_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
        """``(last_seq, approved comments)`` per thread, each pair from one snapshot."""
        wanted = sorted(set(thread_ids))
        if not wanted:
            return {}
        marks, padded = in_list(wanted)
        async with self.db.read() as conn:
            rows = await conn.fetch(
                "SELECT t.id, t.last_seq, (SELECT COUNT(*) FROM comments c "
                "WHERE c.thread_id = t.id AND c.status = 'approved') AS n "
                f"FROM threads t WHERE t.id IN ({marks})",
                *padded,
            )
        return {int(r["id"]): (int(r["last_seq"]), int(r["n"])) for r in rows}

    async def events_since(self, thread_id: int, since: int, limit: int = 1000) -> list[Event]:
        async with self.db.read() as conn:
            rows = await conn.fetch(
                "SELECT e.thread_id, e.seq, e.type, e.comment_id, t.uri FROM events e "
                "JOIN threads t ON t.id = e.thread_id "
                "WHERE e.thread_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3",
                thread_id,
                since,
                limit,
            )
        return [Event(r["thread_id"], r["seq"], r["type"], r["comment_id"], r["uri"]) for r in rows]

    async def last_seqs(
        self, thread_ids: Sequence[int], uris: Sequence[str] = ()
    ) -> tuple[dict[int, int], dict[str, Thread]]:
        """Where many threads stand, in one query each: ``last_seq`` by id, threads by uri.

        The live hub's periodic check asks this for every open room at once (docs/live.md);
        the ids travel as one array parameter, so the statement is the same for any count.
        """
        by_id: dict[int, int] = {}
        by_uri: dict[str, Thread] = {}
        async with self.db.read() as conn:
            if thread_ids:
                if self.db.dialect == "postgres":
                    rows = await conn.fetch(
                        "SELECT id, last_seq FROM threads WHERE id = ANY($1::bigint[])",
                        list(thread_ids),
                    )
                else:
                    rows = await conn.fetch(
                        "SELECT id, last_seq FROM threads "
                        "WHERE id IN (SELECT value FROM json_each($1))",
                        json.dumps(list(thread_ids)),
                    )
                by_id = {int(r["id"]): int(r["last_seq"]) for r in rows}
            if uris:
                if self.db.dialect == "postgres":
                    rows = await conn.fetch(
                        "SELECT id, uri, title, last_seq FROM threads WHERE uri = ANY($1::text[])",
                        list(uris),
                    )
                else:
                    rows = await conn.fetch(
                        "SELECT id, uri, title, last_seq FROM threads "
                        "WHERE uri IN (SELECT value FROM json_each($1))",
                        json.dumps(list(uris)),
                    )
                by_uri = {r["uri"]: Thread.from_row(r) for r in rows}
        return by_id, by_uri

    async def submitted(self, key: str) -> Submitted | None:
        """The earlier submission under ``key`` within the last 24 h, if any."""
        async with self.db.read() as conn:
            row = await conn.fetchrow(
                "SELECT key, body_hash, status, comment_id FROM submissions "
                "WHERE key = $1 AND created >= $2",
                key,
                now() - SUBMISSION_TTL,
            )
        if row is None:
            return None
        return Submitted(row["key"], row["body_hash"], int(row["status"]), row["comment_id"])

    async def prune_submissions(self) -> int:
        async with self.db.transaction() as conn:
            rows = await conn.fetch(
                "DELETE FROM submissions WHERE created < $1 RETURNING key",
                now() - SUBMISSION_TTL,
            )
        return len(rows)

    async def oldest_seq(self, thread_id: int) -> int | None:
        async with self.db.read() as conn:
            value = await conn.fetchval(
                "SELECT MIN(seq) FROM events WHERE thread_id = $1", thread_id
            )
        return None if value is None else int(value)

    # -- writes --------------------------------------------------------------------------

    async def add(
        self,
        uri: str,
        new: NewComment,
        *,
        create_thread: bool,
        title: str | None = None,
        submission: Submission | None = None,
    ) -> tuple[Comment, list[Event]]:
        """Insert a comment; an approved one gets its ``comment.created`` event at once.

        Comments arriving together for one thread are committed together (group commit,
        :mod:`db.groupcommit`); this returns once the transaction holding this one commits.
        With a ``submission``, its key is stored in the same transaction, or, when an earlier
        submission holds it, nothing is added and :class:`DuplicateSubmission` is raised.
        """
        key = "" if self._one_queue else uri
        return await self._adds.submit(key, _Pending(uri, new, create_thread, title, submission))

    async def _add_batch(self, key: str, batch: list[_Pending]) -> list[Added | Exception]:
        try:
            if len(batch) == 1 and self._alone and time.monotonic() >= self._outbox_wanted_until:
                alone = await self._insert_alone(batch[0])
                if alone is not None:
                    return [alone]
            return await self._insert(batch)
        except Unavailable:
            # The connection broke: the commit may have happened. Trying each comment again
            # could store it twice; the callers answer 503 and the clients retry with their
            # Idempotency-Key, which finds the comment if it was stored.
            raise
        except DatabaseError:
            if len(batch) == 1:
                raise
        # One comment the database refuses must not fail the others: each on its own.
        results: list[Added | Exception] = []
        for pending in batch:
            try:
                results.extend(await self._insert([pending]))
            except DatabaseError as exc:
                results.append(exc)
        return results

    async def _insert_alone(self, pending: _Pending) -> Added | None:
        """PostgreSQL: one comment stored by one statement, its own transaction, or ``None``
        when it needs :meth:`_insert`'s transaction; then this wrote nothing.

        A POST to an existing thread is the common case, and as a transaction it was seven
        round trips (begin, thread, insert, seq, event, outbox, commit). The statement takes
        the thread's row lock first (``FOR UPDATE``, which re-reads a row changed meanwhile,
        so a thread closed while it waited is seen closed), then claims the submission key,
        inserts the comment and, if it is approved, bumps the thread's seq and writes its
        event, exactly what :meth:`_insert_thread` writes, in the same order of locks.

        It stores nothing, and the transaction does it all, when: the thread does not exist
        or is closed; an integration's outbox wants the change (its body needs the comment's
        id); the submission key is taken; the parent is not an approved comment of the
        thread; or, for a reply, the thread changed between the statement's snapshot and
        its lock (the parent's status read from that snapshot could be stale: every visible
        change bumps ``last_seq``, so an unchanged ``last_seq`` proves it is not).
        """
        new = pending.new
        if new.created is not None or new.source is not None:
            return None  # imports and benches keep their own path
        change_type = created_type(new.status)
        wanted = " OR ".join(f"({o.wanted.format(type='$19')})" for o in self.outbox) or "false"
        submission = pending.submission
        at = now()
        row = await self.db.write_one(
            INSERT_ALONE.format(wanted=wanted, fields=", ".join(FIELDS), adding=ADDING),
            pending.uri,
            new.parent_id,
            *_written(new),
            at,
            text_key(new.text),
            new.sso_sub,
            submission.key if submission else None,
            submission.body_hash if submission else None,
            submission.status if submission else None,
            at - SUBMISSION_TTL,
            change_type,
        )
        assert row is not None
        if row["outbox_wanted"]:
            # An integration listens: comments take the transaction for a while.
            self._outbox_wanted_until = time.monotonic() + OUTBOX_WANTED_PAUSE
        if row["id"] is None:
            return None
        comment = Comment.from_row(row)
        if row["seq"] is None:
            return comment, []
        seq = int(row["seq"])
        return comment, [
            Event(comment.thread_id, seq, "comment.created", comment.id, row["uri"], comment)
        ]

    async def _insert(self, batch: list[_Pending]) -> list[Added | Exception]:
        """One transaction for the batch: each thread's comments in order, then its events."""
        by_uri: dict[str, list[int]] = {}
        for i, pending in enumerate(batch):
            by_uri.setdefault(pending.uri, []).append(i)
        results: list[Added | Exception | None] = [None] * len(batch)
        queued = 0
        async with self.db.transaction() as conn:
            if self.db.dialect == "postgres":
                await conn.execute(ADDING)
            for uri, positions in by_uri.items():
                added, queued_here = await self._insert_thread(
                    conn, uri, [batch[i] for i in positions]
                )
                queued += queued_here
                for i, outcome in zip(positions, added, strict=True):
                    results[i] = outcome
        self._outbox_written(queued)
        return [r for r in results if r is not None]

    async def _insert_thread(
        self, conn: Connection, uri: str, batch: list[_Pending]
    ) -> tuple[list[Added | Exception], int]:
        """The batch's comments for one thread, and how many outbox rows they queued."""
        thread = await find_thread(conn, uri)
        creator = next((p for p in batch if p.create_thread), None)
        # A title sent with a held comment stays unshown until that comment is approved.
        proposed: _Pending | None = None
        if thread is None and creator is not None:
            shown = creator.title if creator.new.status == APPROVED else None
            thread = await ensure_thread(conn, uri, shown)
            if creator.title and shown is None:
                proposed = creator
        if thread is not None and any(
            p.new.parent_id is not None or p.submission is not None for p in batch
        ):
            # Lock before checking parents, so a concurrent deletion of a parent either
            # commits first (and the reply is refused) or waits for the reply; and before
            # claiming a submission key, the order the one-statement path takes them in
            # (INSERT_ALONE): in the other order, two servers given one key deadlock.
            await lock_thread(conn, thread.id)
        outcomes: list[Row | Exception] = []
        for pending in batch:
            if pending.submission is not None and thread is not None:
                if not await claim_submission(conn, pending.submission):
                    outcomes.append(DuplicateSubmission(pending.submission.key))
                    continue
            outcome = await self._insert_one(conn, thread, uri, pending.new)
            if pending.submission is None:
                pass
            elif isinstance(outcome, Exception):
                # Refused (a reply to a vanished parent): the key stays free for a retry.
                await conn.execute("DELETE FROM submissions WHERE key = $1", pending.submission.key)
            else:
                await conn.execute(
                    "UPDATE submissions SET comment_id = $2 WHERE key = $1",
                    pending.submission.key,
                    outcome["id"],
                )
            outcomes.append(outcome)
            if pending is proposed and thread and not isinstance(outcome, Exception):
                await conn.execute(
                    "UPDATE threads SET proposed_title = $2, proposed_by = $3 "
                    "WHERE id = $1 AND title IS NULL",
                    thread.id,
                    pending.title,
                    outcome["id"],
                )
        approved = [
            ("comment.created", int(o["id"]))
            for o in outcomes
            if not isinstance(o, Exception) and o["status"] == APPROVED
        ]
        # Last, so the thread's row lock (which orders seqs) is held only from here to
        # the commit: concurrent comments on one busy thread queue for as short as can be.
        events = await record_events(conn, thread, approved) if thread is not None else []
        queued = 0
        if self.outbox and thread is not None:
            added = [Comment.from_row(o) for o in outcomes if not isinstance(o, Exception)]
            if added:
                if not events:  # nothing took the thread's lock yet; order needs it
                    await lock_thread(conn, thread.id)
                queued = await self._write_outbox(
                    conn,
                    [
                        Change(
                            created_type(c.status),
                            c,
                            thread.uri,
                        )
                        for c in added
                    ],
                )
        by_comment = {e.comment_id: e for e in events}
        results: list[Added | Exception] = []
        for o in outcomes:
            if isinstance(o, Exception):
                results.append(o)
                continue
            comment = Comment.from_row(o)
            event = by_comment.get(comment.id)
            results.append((comment, [] if event is None else [replace(event, comment=comment)]))
        return results, queued

    @staticmethod
    async def _insert_one(
        conn: Connection, thread: Thread | None, uri: str, new: NewComment
    ) -> Row | Exception:
        if thread is None:
            return UnknownThread(uri)
        if thread.closed:
            return ThreadClosed(uri)
        if new.parent_id is not None:
            parent = await conn.fetchrow(
                "SELECT thread_id, status FROM comments WHERE id = $1", new.parent_id
            )
            if (
                parent is None
                or parent["thread_id"] != thread.id
                or parent["status"] != Status.APPROVED
            ):
                return InvalidParent(str(new.parent_id))
        row = await conn.fetchrow(
            "INSERT INTO comments (thread_id, parent_id, author, email, website, text, html, "
            "status, reason, address, staff_id, created, source, text_key, sso_sub) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "
            f"RETURNING {', '.join(FIELDS)}",
            thread.id,
            new.parent_id,
            *_written(new),
            new.created or now(),
            new.source,
            text_key(new.text),
            new.sso_sub,
        )
        assert row is not None
        if new.staff_id is not None:  # the staff name comes from a join
            row = await conn.fetchrow(f"SELECT {COLUMNS} {FROM} WHERE c.id = $1", row["id"])
            assert row is not None
        return row

    async def add_many(
        self, uri: str, batch: Sequence[NewComment], title: str | None = None
    ) -> list[int]:
        """Insert top-level comments into one thread in one transaction (bulk loads, benches).

        Approved ones get their ``comment.created`` events in the same transaction, exactly
        as :meth:`add` would write them one by one.
        """
        async with self.db.transaction() as conn:
            thread = await ensure_thread(conn, uri, title)
            await lock_thread(conn, thread.id)
            ids: list[int] = []
            for new in batch:
                # The one INSERT every comment goes through (text digest, SSO user and all).
                row = await self._insert_one(conn, thread, uri, replace(new, parent_id=None))
                assert not isinstance(row, Exception)  # top level on an existing thread
                ids.append(int(row["id"]))
            await record_events(
                conn,
                thread,
                [
                    ("comment.created", cid)
                    for cid, new in zip(ids, batch, strict=True)
                    if new.status == APPROVED
                ],
            )
        return ids

    async def change(
        self,
        comment_id: int,
        *,
        status: str | None = None,
        text: str | None = None,
        html: str | None = None,
        edited: datetime | None = None,
        reason: str | None = None,
        version: int | None = None,
    ) -> tuple[Comment, Comment, list[Event]]:
        """Change a comment's status or text; return it before and after, with the events.

        The events are the difference between what readers saw before and after, so a
        deletion can also remove a placeholder parent that has just lost its last reply.
        A new text makes a new version; ``version`` (when given) must be the current one,
        else :class:`StaleVersion` and nothing changes. Approving the comment that proposed
        its thread's title shows that title.
        """
        queued = 0
        async with self.db.transaction() as conn:
            thread_id = await conn.fetchval(
                "SELECT thread_id FROM comments WHERE id = $1", comment_id
            )
            if thread_id is None:
                raise UnknownComment(str(comment_id))
            await lock_thread(conn, thread_id)
            # Read the comment after taking the lock: another change may just have committed.
            row = await conn.fetchrow(f"SELECT {COLUMNS} {FROM} WHERE c.id = $1", comment_id)
            assert row is not None
            old = Comment.from_row(row)
            if version is not None and version != old.version:
                raise StaleVersion(old.version)
            before = await _chain_states(conn, comment_id)
            sets: list[str] = ["version = version + 1"] if text is not None else []
            args: list[Any] = [comment_id]
            for column, value in (
                ("status", status),
                ("text", text),
                ("text_key", None if text is None else text_key(text)),
                ("html", html),
                ("edited", edited),
                ("reason", reason),
            ):
                if value is not None:
                    args.append(value)
                    sets.append(f"{column} = ${len(args)}")
            if sets:
                await conn.execute(f"UPDATE comments SET {', '.join(sets)} WHERE id = $1", *args)
            if status == APPROVED:
                await conn.execute(
                    "UPDATE threads SET title = proposed_title, proposed_title = NULL, "
                    "proposed_by = NULL WHERE id = $1 AND proposed_by = $2 AND title IS NULL",
                    old.thread_id,
                    comment_id,
                )
            after = await _chain_states(conn, comment_id)
            changes = diff_events(before, after, edited=[comment_id] if text is not None else [])
            events = await record_events(conn, old.thread_id, changes)
            row = await conn.fetchrow(f"SELECT {COLUMNS} {FROM} WHERE c.id = $1", comment_id)
            assert row is not None
            new = Comment.from_row(row)
            kind = change_of(old, new, edited=text is not None)
            if self.outbox and kind is not None:
                uri = await conn.fetchval("SELECT uri FROM threads WHERE id = $1", old.thread_id)
                queued = await self._write_outbox(conn, [Change(kind, new, uri)])
        self._outbox_written(queued)
        return old, new, events

    async def by_ids(self, ids: Iterable[int]) -> dict[int, Comment]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        marks, padded = in_list(wanted)
        sql = f"SELECT {COLUMNS} {FROM} WHERE c.id IN ({marks})"
        if len(wanted) <= INLINE_IDS:  # the live path after each commit: a few primary keys
            rows = await self.db.lookup_all(sql, *padded)
        else:  # a replay's batch goes to a reader
            async with self.db.read() as conn:
                rows = await conn.fetch(sql, *padded)
        return {r["id"]: Comment.from_row(r) for r in rows}

    # -- housekeeping --------------------------------------------------------------------

    async def erase_addresses(self, before: datetime) -> int:
        async with self.db.transaction() as conn:
            rows = await conn.fetch(
                "UPDATE comments SET address = NULL WHERE address IS NOT NULL AND created < $1 "
                "RETURNING id",
                before,
            )
        return len(rows)

    async def prune_events(self, before: datetime) -> int:
        """Drop old events, but always keep each thread's newest so its cursor stays valid."""
        async with self.db.transaction() as conn:
            rows = await conn.fetch(
                "DELETE FROM events WHERE created < $1 AND seq < "
                "(SELECT t.last_seq FROM threads t WHERE t.id = events.thread_id) RETURNING seq",
                before,
            )
        return len(rows)
