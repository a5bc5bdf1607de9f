"""Writing imported posts, threads and comments, one short transaction per batch.

An import is a *run* (``import_runs``); every row it writes carries the run's id, so a run
that fails half-way, or whose process was killed, is removed completely by :meth:`undo` even
though its batches were committed one by one (a long import must never hold the SQLite writer
for minutes).

Each batch keeps the read-cache invariant of :mod:`db.comments`: comments that become visible
get their ``comment.created`` events and bump ``threads.last_seq`` in the same transaction.
Idempotency rests on the ``source`` columns (UNIQUE): a comment or post whose source is
already stored is left alone, so importing the same file twice changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from db.comments import diff_events, find_thread, record_events, text_key, visible_states
from db.database import Connection, Database
from db.models import Event, Status, now
from db.threads import NO_COMMENT

CHUNK = 500  # parameters per IN (…) list: well below both engines' limits


@dataclass(frozen=True)
class PostIn:
    slug: str
    title: str
    author: str
    body_html: str
    published: datetime
    categories: tuple[str, ...] = ()
    language: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class ThreadIn:
    """A thread as a source names it; ``key`` is what its comments refer to."""

    key: str
    uri: str
    title: str | None = None
    created: datetime | None = None
    aliases: tuple[str, ...] = ()
    post: PostIn | None = None
    # Kept only on a thread the import creates: a thread already here keeps its own decision.
    closed: bool | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True)
class CommentIn:
    thread_key: str
    source: str
    parent_source: str | None
    author: str
    email: str
    website: str | None
    text: str
    html: str
    status: str
    created: datetime
    edited: datetime | None = None
    address: str | None = None
    reason: str | None = None
    staff_name: str | None = None
    sso_sub: str | None = None
    pinned: bool = False  # kept where the comment lands at the top level
    up: int = 0
    down: int = 0
    votes: tuple[tuple[str, int], ...] = ()  # (opaque voter id, 1 or -1), one per voter


@dataclass
class BatchResult:
    """What one batch did, for the closing summary."""

    posts_created: int = 0
    posts_existing: int = 0
    renamed_slugs: list[tuple[str, str]] = field(default_factory=list)
    threads_created: int = 0
    aliases_shadowed: list[str] = field(default_factory=list)
    inserted: list[tuple[CommentIn, int | None]] = field(default_factory=list)  # (c, parent id)
    existing: int = 0
    duplicates: int = 0
    rerooted: list[tuple[str, str]] = field(default_factory=list)  # (source, why)
    unknown_staff: set[str] = field(default_factory=set)
    pins_dropped: int = 0  # pinned replies: only a top-level comment can be pinned
    events: list[Event] = field(default_factory=list)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _marks(count: int, first: int = 1) -> str:
    return ", ".join(f"${i}" for i in range(first, first + count))


async def _by_source(conn: Connection, sources: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``source → (comment id, thread id)`` for the sources already stored."""
    found: dict[str, tuple[int, int]] = {}
    for chunk in _chunks(sorted(set(sources))):
        rows = await conn.fetch(
            f"SELECT id, thread_id, source FROM comments WHERE source IN ({_marks(len(chunk))})",
            *chunk,
        )
        found.update({r["source"]: (r["id"], r["thread_id"]) for r in rows})
    return found


_APPROVED_BELOW = (
    "WITH RECURSIVE below(id) AS ("
    " SELECT id FROM comments WHERE parent_id = $1"
    " UNION ALL SELECT c.id FROM comments c JOIN below b ON c.parent_id = b.id)"
    " SELECT 1 FROM comments c JOIN below b ON b.id = c.id WHERE c.status = 'approved' LIMIT 1"
)


async def _hidden_ancestors(conn: Connection, parent_id: int, checked: set[int]) -> list[int]:
    """Stored comments, from ``parent_id`` up, that readers do not see yet and will once a
    visible reply is added below them (they become placeholders)."""
    hidden: list[int] = []
    current: int | None = parent_id
    while current is not None and current not in checked:
        checked.add(current)
        row = await conn.fetchrow("SELECT parent_id, status FROM comments WHERE id = $1", current)
        if row is None or row["status"] == Status.APPROVED:
            break  # shown already, and so is everything above it
        if await conn.fetchval(_APPROVED_BELOW, current) is not None:
            break  # a placeholder already
        hidden.append(current)
        current = row["parent_id"]
    return hidden


async def _states(conn: Connection, thread_id: int) -> dict[int, str]:
    rows = await conn.fetch(
        "SELECT id, parent_id, status FROM comments WHERE thread_id = $1", thread_id
    )
    return visible_states((r["id"], r["parent_id"], r["status"]) for r in rows)


class ImportStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- runs --------------------------------------------------------------------------------

    async def begin(self, fmt: str, file: str) -> int:
        async with self.db.transaction() as conn:
            return int(
                await conn.fetchval(
                    "INSERT INTO import_runs (format, file, started) VALUES ($1, $2, $3) "
                    "RETURNING id",
                    fmt,
                    file,
                    now(),
                )
            )

    async def finish(self, run: int) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE import_runs SET finished = $2, outcome = 'done' WHERE id = $1", run, now()
            )

    async def unfinished(self) -> list[tuple[int, str, str]]:
        """Runs that never finished (their process died): ``(id, format, file)``."""
        async with self.db.read() as conn:
            rows = await conn.fetch(
                "SELECT id, format, file FROM import_runs WHERE outcome = 'running' ORDER BY id"
            )
        return [(r["id"], r["format"], r["file"]) for r in rows]

    async def undo(self, run: int) -> list[Event]:
        """Remove everything the run wrote, in one transaction.

        Threads that existed before the run get ``comment.deleted`` events for the imported
        comments readers may have seen; threads the run created go entirely, unless someone
        commented on them meanwhile (their other comments stay, re-rooted where needed).
        """
        async with self.db.transaction() as conn:
            own = {
                r["id"]
                for r in await conn.fetch("SELECT id FROM threads WHERE import_run = $1", run)
            }
            touched = {
                r["thread_id"]
                for r in await conn.fetch(
                    "SELECT DISTINCT thread_id FROM comments WHERE import_run = $1", run
                )
            }
            before = {t: await _states(conn, t) for t in sorted(touched - own)}
            await conn.execute(
                "UPDATE comments SET parent_id = NULL "
                "WHERE (import_run IS NULL OR import_run <> $1) "
                "AND parent_id IN (SELECT id FROM comments WHERE import_run = $1)",
                run,
            )
            for table in ("events", "votes"):  # votes: the file's, and readers' since
                await conn.execute(
                    f"DELETE FROM {table} WHERE comment_id IN "
                    "(SELECT id FROM comments WHERE import_run = $1)",
                    run,
                )
            await conn.execute("DELETE FROM comments WHERE import_run = $1", run)
            events: list[Event] = []
            for thread_id, old in before.items():
                events += await record_events(
                    conn, thread_id, diff_events(old, await _states(conn, thread_id))
                )
            await conn.execute("DELETE FROM thread_aliases WHERE import_run = $1", run)
            await conn.execute("DELETE FROM posts WHERE import_run = $1", run)
            for thread_id in sorted(own):
                busy = await conn.fetchval(
                    "SELECT 1 FROM comments WHERE thread_id = $1 UNION ALL "
                    "SELECT 1 FROM posts WHERE thread_id = $1 LIMIT 1",
                    thread_id,
                )
                if busy is None:
                    await conn.execute("DELETE FROM events WHERE thread_id = $1", thread_id)
                    await conn.execute("DELETE FROM thread_aliases WHERE thread_id = $1", thread_id)
                    await conn.execute("DELETE FROM threads WHERE id = $1", thread_id)
            await conn.execute(
                "UPDATE import_runs SET finished = $2, outcome = 'undone' WHERE id = $1", run, now()
            )
        return events

    # -- batches -----------------------------------------------------------------------------

    async def write_batch(
        self,
        run: int,
        threads: Sequence[ThreadIn],
        comments: Sequence[CommentIn],
        thread_ids: dict[str, int],
    ) -> BatchResult:
        """Write threads (with posts and aliases) and comments in one transaction.

        ``thread_ids`` maps thread keys to ids across batches; it is updated here. A comment's
        parent must have been written before it (an earlier batch, or earlier in this one),
        which also rules out cycles; otherwise the comment goes to the top level, reported.
        """
        result = BatchResult()
        async with self.db.transaction() as conn:
            for thread in threads:
                thread_ids[thread.key] = await self._thread(conn, run, thread, result)
            if comments:
                await self._comments(conn, run, comments, thread_ids, result)
        return result

    async def _thread(
        self, conn: Connection, run: int, thread: ThreadIn, result: BatchResult
    ) -> int:
        uri = thread.uri
        post = thread.post
        if post is not None:
            if post.source is not None:
                found = await conn.fetchrow(
                    "SELECT thread_id FROM posts WHERE source = $1", post.source
                )
            else:
                found = await conn.fetchrow(
                    "SELECT thread_id FROM posts WHERE slug = $1", post.slug
                )
            if found is not None:
                result.posts_existing += 1
                thread_id = int(found["thread_id"])
                await self._aliases(conn, run, thread_id, uri, thread.aliases, result)
                return thread_id
            slug, n = post.slug, 1
            while await conn.fetchval("SELECT 1 FROM posts WHERE slug = $1", slug):
                n += 1
                slug = f"{post.slug}-{n}"
            if slug != post.slug:
                result.renamed_slugs.append((post.slug, slug))
            uri = f"/posts/{slug}"
        thread_id = await self._ensure_thread(conn, run, uri, thread, result)
        if post is not None:
            await conn.execute(
                "INSERT INTO posts (slug, title, author, body_html, categories, language, "
                "published, thread_id, source, import_run) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                uri.removeprefix("/posts/"),
                post.title,
                post.author,
                post.body_html,
                json.dumps(list(post.categories), ensure_ascii=False),
                post.language,
                post.published,
                thread_id,
                post.source,
                run,
            )
            result.posts_created += 1
        await self._aliases(conn, run, thread_id, uri, thread.aliases, result)
        return thread_id

    async def _ensure_thread(
        self, conn: Connection, run: int, uri: str, thread: ThreadIn, result: BatchResult
    ) -> int:
        found = await find_thread(conn, uri)
        if found is not None:
            return found.id
        result.threads_created += 1
        closed = None if thread.closed is None else int(thread.closed)
        thread_id = int(
            await conn.fetchval(
                "INSERT INTO threads (uri, title, created, import_run, closed, closed_at) "
                "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                uri,
                thread.title,
                thread.created or now(),
                run,
                closed,
                None if closed is None else thread.closed_at,
            )
        )
        if closed == 1:  # a reader with the thread open learns it, as when staff close it
            result.events += await record_events(conn, thread_id, [("thread.closed", NO_COMMENT)])
        return thread_id

    async def _aliases(
        self,
        conn: Connection,
        run: int,
        thread_id: int,
        uri: str,
        aliases: Iterable[str],
        result: BatchResult,
    ) -> None:
        for alias in aliases:
            if alias == uri:
                continue
            other = await find_thread(conn, alias)
            if other is not None:
                if other.id != thread_id:
                    result.aliases_shadowed.append(alias)
                continue
            await conn.execute(
                "INSERT INTO thread_aliases (uri, thread_id, import_run) VALUES ($1, $2, $3) "
                "ON CONFLICT (uri) DO NOTHING",
                alias,
                thread_id,
                run,
            )

    async def _comments(
        self,
        conn: Connection,
        run: int,
        comments: Sequence[CommentIn],
        thread_ids: dict[str, int],
        result: BatchResult,
    ) -> None:
        stored = await _by_source(conn, [c.source for c in comments])
        fresh: list[CommentIn] = []
        seen: set[str] = set()
        for c in comments:
            if c.source in stored:
                result.existing += 1
            elif c.source in seen:
                result.duplicates += 1
            else:
                seen.add(c.source)
                fresh.append(c)
        if not fresh:
            return
        wanted = [c.parent_source for c in fresh if c.parent_source and c.parent_source not in seen]
        earlier = await _by_source(conn, [p for p in wanted if p])
        staff = await self._staff(conn, {c.staff_name for c in fresh if c.staff_name}, result)

        # Parents: an earlier batch (``earlier``) or earlier in this batch (``placed``).
        placed: dict[str, int] = {}  # source → thread id, in stream order
        parents: dict[str, str | int] = {}  # source → parent source (this batch) or parent id
        for c in fresh:
            thread_id = thread_ids[c.thread_key]
            p = c.parent_source
            if p is not None:
                if p in placed:
                    if placed[p] == thread_id:
                        parents[c.source] = p
                    else:
                        result.rerooted.append((c.source, "parent is in another thread"))
                elif p in earlier:
                    pid, ptid = earlier[p]
                    if ptid == thread_id:
                        parents[c.source] = pid
                    else:
                        result.rerooted.append((c.source, "parent is in another thread"))
                else:
                    result.rerooted.append((c.source, "parent not imported"))
            placed[c.source] = thread_id
        # Which of these will readers see, and which stored comments do they make visible?
        # (A hidden stored ancestor turns into a placeholder.) Found before the insert, so
        # "stored" needs no care, and without reading whole threads.
        index = {c.source: i for i, c in enumerate(fresh)}
        local = {s: index[p] for s, p in parents.items() if isinstance(p, str)}
        visible = visible_states((i, local.get(c.source), c.status) for i, c in enumerate(fresh))
        shown = {c.source for i, c in enumerate(fresh) if i in visible}
        uncovered: dict[int, list[int]] = {}
        checked: set[int] = set()
        for c in fresh:
            stored_parent = parents.get(c.source)
            if isinstance(stored_parent, int) and c.source in shown:
                uncovered.setdefault(thread_ids[c.thread_key], []).extend(
                    await _hidden_ancestors(conn, stored_parent, checked)
                )

        pinned = {c.source for c in fresh if c.pinned and c.source not in parents}
        result.pins_dropped = sum(c.pinned for c in fresh) - len(pinned)
        await conn.executemany(
            "INSERT INTO comments (thread_id, author, email, website, text, html, status, "
            "reason, address, staff_id, created, edited, source, import_run, text_key, sso_sub, "
            "pinned, up, down) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
            "$14, $15, $16, $17, $18, $19)",
            [
                (
                    thread_ids[c.thread_key],
                    c.author,
                    c.email,
                    c.website,
                    c.text,
                    c.html,
                    c.status,
                    c.reason,
                    c.address,
                    staff.get(c.staff_name or ""),
                    c.created,
                    c.edited,
                    c.source,
                    run,
                    text_key(c.text),
                    c.sso_sub,
                    int(c.source in pinned),
                    c.up,
                    c.down,
                )
                for c in fresh
            ],
        )
        written = await _by_source(conn, [c.source for c in fresh])
        ids = {s: cid for s, (cid, _) in written.items()}
        ballots = [(ids[c.source], voter, value) for c in fresh for voter, value in c.votes]
        if ballots:
            cast = now()  # when they were cast is not exported: nothing needs it
            await conn.executemany(
                "INSERT INTO votes (comment_id, voter, value, created) VALUES ($1, $2, $3, $4)",
                [(*ballot, cast) for ballot in ballots],
            )
        parent_ids = {s: (p if isinstance(p, int) else ids[p]) for s, p in parents.items()}
        if parent_ids:
            await conn.executemany(
                "UPDATE comments SET parent_id = $2 WHERE id = $1",
                [(ids[s], pid) for s, pid in parent_ids.items()],
            )
        result.inserted = [(c, parent_ids.get(c.source)) for c in fresh]

        by_thread: dict[int, list[tuple[str, int]]] = {}
        for c in fresh:
            if c.source in shown:
                by_thread.setdefault(thread_ids[c.thread_key], []).append(
                    ("comment.created", ids[c.source])
                )
        for thread_id, ancestors in uncovered.items():
            by_thread.setdefault(thread_id, []).extend(("comment.approved", a) for a in ancestors)
        for thread_id, changes in by_thread.items():
            changes.sort(key=lambda change: change[1])
            result.events += await record_events(conn, thread_id, changes)

    async def _staff(
        self, conn: Connection, names: set[str], result: BatchResult
    ) -> dict[str, int]:
        found: dict[str, int] = {}
        for name in sorted(names):
            staff_id = await conn.fetchval("SELECT id FROM staff WHERE name = $1", name)
            if staff_id is None:
                result.unknown_staff.add(name)
            else:
                found[name] = int(staff_id)
        return found
