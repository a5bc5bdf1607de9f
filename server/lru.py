"""The one bounded map every cache of a process is made of: least recently used out first.

Thread bodies, rendered comment lists and pages, counts, page layouts and the answers the
HTTP protocol gives again all keep values under keys that name exactly what they show (a
thread's version is in every key), so none needs invalidating; what they need is a bound.
Bounded in count, and in bytes where a size is given (answers given again can be large).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most ``capacity`` values and, with ``size``, at most ``max_bytes`` of them."""

    def __init__(
        self,
        capacity: int,
        *,
        max_bytes: int | None = None,
        size: Callable[[V], int] | None = None,
    ) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self.bytes = 0  # the sum of ``size`` over the values kept (0 without one)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        """The value, now the most recently used; None if not kept."""
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def peek(self, key: K) -> V | None:
        """The value, its place in the order unchanged."""
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` as the most recently used, dropping the least recently used beyond
        the bounds."""
        self.pop(key)
        self._items[key] = value
        if self._size is not None:
            self.bytes += self._size(value)
        while len(self._items) > self.capacity or (
            self.max_bytes is not None and self.bytes > self.max_bytes
        ):
            _, oldest = self._items.popitem(last=False)
            if self._size is not None:
                self.bytes -= self._size(oldest)

    def pop(self, key: K) -> V | None:
        """Forget ``key``; its value, if it was kept."""
        old = self._items.pop(key, None)
        if old is not None and self._size is not None:
            self.bytes -= self._size(old)
        return old
