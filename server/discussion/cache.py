"""Encoded thread reads, cached by the thread's event counter.

Every change readers can see bumps ``threads.last_seq`` in the writing transaction, so
``(thread_id, last_seq)`` names one exact visible state of a thread, in every process: a
cached body is never stale, and no invalidation message is needed between hosts.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.lru import LRU

if TYPE_CHECKING:
    from db.comments import CommentStore
    from db.models import Post


class ThreadCache:
    """Bodies by ``(thread_id, version)``; besides, the newest body of each uri read.

    The version is ``last_seq`` plus whatever else readers see change without an event (vote
    counts: ``votes_seq`` and this process's unflushed votes), so a hit is never stale. The
    newest body by uri (:meth:`last`) is what reads fall back on while the database is
    unreachable: the thread as it was when last read, rather than an error; and the posts
    seen lately (:meth:`post`) let the comment form come back with what was typed.
    """

    def __init__(self, capacity: int = 512) -> None:
        self._bodies: LRU[tuple[int, Hashable], bytes] = LRU(capacity)
        self._last: LRU[str, tuple[int, bytes]] = LRU(capacity)
        self._posts: LRU[str, Post] = LRU(capacity)

    def remember_post(self, post: Post) -> None:
        """Keep a post seen lately, so its form can be shown again while the database is down."""
        self._posts.put(post.slug, post)

    def post(self, slug: str) -> Post | None:
        return self._posts.peek(slug)

    def remember(self, uri: str, seq: int, body: bytes) -> None:
        """Keep ``body`` as the newest known state of ``uri`` (unless a newer one is kept)."""
        known = self._last.get(uri)
        if known is None or known[0] <= seq:
            self._last.put(uri, (seq, body))

    def last(self, uri: str) -> bytes | None:
        known = self._last.peek(uri)
        return known[1] if known else None

    def get(self, thread_id: int, version: Hashable) -> bytes | None:
        return self._bodies.get((thread_id, version))

    def put(self, thread_id: int, version: Hashable, body: bytes) -> None:
        self._bodies.put((thread_id, version), body)


class CountCache:
    """Approved counts per thread, each kept with the ``last_seq`` it was counted at.

    A counts request then costs one indexed read of the named threads' ``last_seq`` (unknown
    uris find nothing and count 0); only threads that changed since they were last asked
    about are counted again, all in one more query.
    """

    def __init__(self, capacity: int = 20_000) -> None:
        self._counted: LRU[int, tuple[int, int]] = LRU(capacity)

    async def counts(self, store: CommentStore, uris: Sequence[str]) -> dict[str, int]:
        versions = await store.thread_versions(uris)
        known: dict[int, int] = {}
        stale: set[int] = set()
        for thread_id, seq in versions.values():
            item = self._counted.get(thread_id)
            if item is not None and item[0] == seq:
                known[thread_id] = item[1]
            else:
                stale.add(thread_id)
        if stale:
            for thread_id, (seq, n) in (await store.approved_counts(stale)).items():
                # Counted at ``seq`` or later than the version read above: never older.
                known[thread_id] = n
                self._counted.put(thread_id, (seq, n))
        return {uri: known.get(versions[uri][0], 0) if uri in versions else 0 for uri in uris}

    @staticmethod
    async def version(store: CommentStore, question: CountQuestion) -> Hashable:
        """The state of the question's threads: one indexed read (unknown uris are absent)."""
        return tuple(sorted((await store.thread_versions(question.threads)).values()))

    async def answer(self, store: CommentStore, question: CountQuestion) -> tuple[Hashable, bytes]:
        """The threads' versions and the encoded answer to ``question``, re-encoded only when
        one of its threads moved.

        Index pages ask the same question again and again: the same uris in the same order.
        The versions read are the whole key, so an answer given again is never stale. A body
        counted after a commit that followed the versions' read shows more than they say;
        kept under them, it is never given again (the next read of the versions differs).
        """
        key = await self.version(store, question)
        if question.answered is not None and question.answered[0] == key:
            return question.answered
        found = await self.counts(store, question.threads)
        body = json.dumps(
            {asked: found.get(uri, 0) for asked, uri in question.asked},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        question.answered = (key, body)
        return key, body


@dataclass
class CountQuestion:
    """One counts query as asked (``asked``: each uri given and its thread key) and its last
    answer with the thread versions it was counted at."""

    asked: tuple[tuple[str, str], ...]
    threads: tuple[str, ...]  # the distinct thread keys, sorted
    answered: tuple[Hashable, bytes] | None = None


class CountQuestions:
    """Questions by their raw query string, so a repeated one is not parsed again."""

    def __init__(self, capacity: int = 1024) -> None:
        self._questions: LRU[bytes, CountQuestion] = LRU(capacity)

    def get(self, query: bytes) -> CountQuestion | None:
        return self._questions.get(query)

    def put(self, query: bytes, asked: dict[str, str]) -> CountQuestion:
        question = CountQuestion(tuple(asked.items()), tuple(sorted(set(asked.values()))))
        self._questions.put(query, question)
        return question


@dataclass(frozen=True)
class RenderedThread:
    """A post page's comment list as HTML, with what the page says about it."""

    cursor: int  # the thread's last_seq this HTML shows
    count: int  # approved comments
    html: str  # the list items, escaped by the template: safe to insert as they are
    top_level: int = 0  # visible top-level comments (the order control shows above one)
    closed: bool = False
    next_token: str | None = None  # the ``after`` cursor of the next page, if there is one
    sort: str = "oldest"
    paged: bool = False  # a later page (``after`` given)
    # The thread version the HTML shows exactly, or None when it must not be cached.
    version: Hashable | None = None


@dataclass(frozen=True)
class RenderedPage:
    """A whole post page as every reader without a session sees it, cut at the form token."""

    cursor: int
    parts: tuple[bytes, bytes]  # before and after the form token
