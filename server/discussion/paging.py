"""Keyset pages of a thread's top-level comments, each with all its visible replies.

A page is cut from the thread's index (:class:`db.threads.ThreadIndex`) by a sort key:

* ``oldest``: pinned first, then date and id ascending;
* ``newest``: pinned first, then date and id descending;
* ``best``: pinned first, then score (``up - down``) descending, then oldest first.

The cursor ``next`` is the sort key of the page's last top-level comment, so the next page
is "every top-level comment whose key comes after it". A comment posted meanwhile gets a key
of its own, which never moves an existing comment across the cursor: following ``next``
yields every top-level comment that existed at the first page exactly once. (A vote or pin
that changes a comment's key between two page reads can move that one comment; the pages
stay consistent for everything else.)

Cursors are signed and carry the thread id and sort, so a forged cursor, or one from another
thread or order, is refused rather than paging somewhere else.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from itsdangerous import BadData, URLSafeSerializer

from db.comments import FULL, visible_states
from db.models import Comment, Thread
from db.threads import IndexEntry, ThreadIndex, ThreadStore
from server.lru import LRU

SORTS = ("oldest", "newest", "best")
MAX_LIMIT = 200
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Key = tuple[int, ...]


class BadCursor(Exception):
    """The ``after`` cursor was not issued for this thread and order."""


def _micros(when: datetime) -> int:
    return (when - EPOCH) // timedelta(microseconds=1)


def sort_key(entry: IndexEntry, sort: str) -> Key:
    """Ascending tuples of ints: exact, comparable, and small in a cursor."""
    pinned = 0 if entry.pinned and entry.status == "approved" else 1
    if sort == "newest":
        return (pinned, -_micros(entry.created), -entry.id)
    if sort == "best":
        score = entry.score if entry.status == "approved" else 0
        return (pinned, -score, _micros(entry.created), entry.id)
    return (pinned, _micros(entry.created), entry.id)


class Cursors:
    """Signs and reads ``next`` cursors."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeSerializer(secret, salt="kibitz.page")

    def issue(self, thread_id: int, sort: str, key: Key) -> str:
        return self._serializer.dumps([thread_id, sort, list(key)])

    def read(self, token: str, thread_id: int, sort: str) -> Key:
        try:
            data = self._serializer.loads(token)
        except (BadData, ValueError, UnicodeError):
            raise BadCursor(token) from None
        if (
            not isinstance(data, list)
            or len(data) != 3
            or data[0] != thread_id
            or data[1] != sort
            or not isinstance(data[2], list)
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in data[2])
        ):
            raise BadCursor(token)
        return tuple(data[2])


@dataclass(frozen=True)
class Page:
    """One page: the comments to show (flat, parent links) with their visible states."""

    ids: list[int]  # roots in page order, each followed by its replies oldest first
    states: dict[int, str]
    next_key: Key | None
    top_level: int
    count: int  # approved comments in the whole thread
    numbers: dict[int, int]  # each approved root's number in the whole thread


@dataclass(frozen=True)
class Layout:
    """The thread's visible shape: states, roots and each root's replies (oldest first)."""

    states: dict[int, str]
    roots: list[IndexEntry]
    replies: dict[int, list[int]]
    count: int
    root_of: dict[int, int]
    numbers: dict[int, int]  # approved top-level comments numbered 1, 2, 3… by date
    # each order's (keys, roots), sorted once per layout: a page is then a bisect and a slice
    _orders: dict[str, tuple[list[Key], list[IndexEntry]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(cls, index: ThreadIndex) -> Layout:
        entries = {e.id: e for e in index.entries}
        states = visible_states((e.id, e.parent_id, e.status) for e in index.entries)
        visible = [e for e in index.entries if e.id in states]
        root_of: dict[int, int] = {}

        def find_root(entry: IndexEntry) -> int:
            # A reply whose parent is not visible (or a loop from a bad import) is shown at
            # the top level, as the page's tree does.
            chain: list[int] = []
            seen: set[int] = set()
            current = entry
            while True:
                if current.id in root_of:
                    root = root_of[current.id]
                    break
                seen.add(current.id)
                chain.append(current.id)
                parent = current.parent_id
                if parent is None or parent not in states or parent in seen:
                    root = current.id
                    break
                current = entries[parent]
            for cid in chain:
                root_of[cid] = root
            return root

        replies: dict[int, list[IndexEntry]] = {}
        for entry in visible:
            root = find_root(entry)
            if root != entry.id:
                replies.setdefault(root, []).append(entry)
        roots = [e for e in visible if root_of[e.id] == e.id]
        ordered = {
            root: [e.id for e in sorted(found, key=lambda e: (e.created, e.id))]
            for root, found in replies.items()
        }
        count = sum(1 for e in index.entries if e.status == "approved")
        numbers = {
            e.id: n
            for n, e in enumerate(
                sorted((e for e in roots if states[e.id] == FULL), key=lambda e: (e.created, e.id)),
                start=1,
            )
        }
        return cls(states, roots, ordered, count, root_of, numbers)

    def ordered(self, sort: str) -> tuple[list[Key], list[IndexEntry]]:
        found = self._orders.get(sort)
        if found is None:
            pairs = sorted(((sort_key(e, sort), e) for e in self.roots), key=lambda p: p[0])
            found = self._orders[sort] = ([k for k, _ in pairs], [e for _, e in pairs])
        return found


def page_of(layout: Layout, sort: str, limit: int | None, after: Key | None) -> Page:
    """The page after ``after`` (from the start when None) of at most ``limit`` roots."""
    keys, roots = layout.ordered(sort)
    start = 0 if after is None else bisect_right(keys, after)
    end = len(roots) if limit is None else min(len(roots), start + limit)
    ids: list[int] = []
    for root in roots[start:end]:
        ids.append(root.id)
        ids.extend(layout.replies.get(root.id, ()))
    return Page(
        ids=ids,
        states={cid: layout.states[cid] for cid in ids},
        next_key=keys[end - 1] if end < len(roots) and end > start else None,
        top_level=len(layout.roots),
        count=layout.count,
        numbers={cid: layout.numbers[cid] for cid in ids if cid in layout.numbers},
    )


def start_of_page_holding(
    layout: Layout, sort: str, page_size: int, comment_id: int
) -> Key | bool | None:
    """The ``after`` key of the page that shows ``comment_id``: ``None`` for the first page,
    ``False`` when the comment is not visible."""
    root = layout.root_of.get(comment_id)
    if root is None:
        return False
    keys, roots = layout.ordered(sort)
    position = next(i for i, e in enumerate(roots) if e.id == root)
    page = position // page_size
    return None if page == 0 else keys[page * page_size - 1]


def parse_limit(raw: str | None) -> int | None:
    """``None`` (the whole thread) or 1..MAX_LIMIT; ValueError for anything else."""
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4):
        raise ValueError(raw)
    value = int(raw)
    if not 1 <= value <= MAX_LIMIT:
        raise ValueError(raw)
    return value


class Pager:
    """Reads pages of threads, caching each thread's layout by its version.

    The version (``last_seq``, ``votes_seq``) changes with everything readers can see, in
    every process, so a cached layout is never stale and needs no invalidation message.
    """

    def __init__(self, store: ThreadStore, secret: str, capacity: int = 16) -> None:
        self.store = store
        self.cursors = Cursors(secret)
        self._layouts: LRU[int, tuple[tuple[int, int], ThreadIndex, Layout]] = LRU(capacity)

    async def layout(self, thread: Thread) -> tuple[ThreadIndex, Layout] | None:
        cached = self._layouts.get(thread.id)
        if cached is not None and cached[0] == thread.version:
            return cached[1], cached[2]
        index = await self.store.index(thread.id)
        if index is None:
            return None
        layout = Layout.of(index)
        self._layouts.put(thread.id, (index.version, index, layout))
        return index, layout

    async def page(
        self, thread: Thread, sort: str, limit: int | None, after: str | None
    ) -> tuple[ThreadIndex, Page, list[Comment]] | None:
        """The page and its comments' full rows; BadCursor for a cursor not issued here."""
        key = self.cursors.read(after, thread.id, sort) if after is not None else None
        found = await self.layout(thread)
        if found is None:
            return None
        index, layout = found
        page = page_of(layout, sort, limit, key)
        rows = await self.store.comments(page.ids)
        return index, page, [rows[cid] for cid in page.ids if cid in rows]

    def next_token(self, thread_id: int, sort: str, page: Page) -> str | None:
        return None if page.next_key is None else self.cursors.issue(thread_id, sort, page.next_key)

    async def page_holding(self, thread: Thread, comment_id: int, page_size: int) -> str | None:
        """The ``after`` cursor of the oldest-first page that shows the comment (None: the
        first page); :class:`LookupError` when readers cannot see it."""
        found = await self.layout(thread)
        if found is None:
            raise LookupError(comment_id)
        key = start_of_page_holding(found[1], "oldest", page_size, comment_id)
        if key is False:
            raise LookupError(comment_id)
        return None if key is None else self.cursors.issue(thread.id, "oldest", key)  # type: ignore[arg-type]
