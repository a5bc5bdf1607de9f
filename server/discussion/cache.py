"""Encoded thread reads, cached by the thread's event counter.

Every change readers can see bumps ``threads.last_seq`` in the writing transaction, so
``(thread_id, last_seq)`` names one exact visible state of a thread, in every process: a
cached body is never stale, and no invalidation message is needed between hosts.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from db.models import Post


class ThreadCache:
    """Bodies by ``(thread_id, last_seq)``; besides, the newest body of each uri read.

    The newest body by uri (:meth:`last`) is what reads fall back on while the database is
    unreachable: the thread as it was when last read, rather than an error; and the posts
    seen lately (:meth:`post`) let the comment form come back with what was typed.
    """

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._last: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._posts: OrderedDict[str, Post] = OrderedDict()

    def remember_post(self, post: Post) -> None:
        """Keep a post seen lately, so its form can be shown again while the database is down."""
        self._posts[post.slug] = post
        self._posts.move_to_end(post.slug)
        while len(self._posts) > self.capacity:
            self._posts.popitem(last=False)

    def post(self, slug: str) -> Post | None:
        return self._posts.get(slug)

    def remember(self, uri: str, seq: int, body: bytes) -> None:
        """Keep ``body`` as the newest known state of ``uri`` (unless a newer one is kept)."""
        known = self._last.get(uri)
        if known is None or known[0] <= seq:
            self._last[uri] = (seq, body)
        self._last.move_to_end(uri)
        while len(self._last) > self.capacity:
            self._last.popitem(last=False)

    def last(self, uri: str) -> bytes | None:
        known = self._last.get(uri)
        return known[1] if known else None

    def get(self, thread_id: int, seq: int) -> bytes | None:
        key = (thread_id, seq)
        body = self._items.get(key)
        if body is not None:
            self._items.move_to_end(key)
        return body

    def put(self, thread_id: int, seq: int, body: bytes) -> None:
        self._items[(thread_id, seq)] = body
        self._items.move_to_end((thread_id, seq))
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
