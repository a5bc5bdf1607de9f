"""Encoded thread reads, cached by the thread's event counter.

Every change readers can see bumps ``threads.last_seq`` in the writing transaction, so
``(thread_id, last_seq)`` names one exact visible state of a thread, in every process: a
cached body is never stale, and no invalidation message is needed between hosts.
"""

from __future__ import annotations

from collections import OrderedDict


class ThreadCache:
    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[int, int], bytes] = OrderedDict()

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
