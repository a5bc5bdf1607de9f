"""The bounded map behind every cache (server/lru.py)."""

from __future__ import annotations

from server.lru import LRU


def test_the_least_recently_used_goes_first() -> None:
    """Past the count, the value neither put nor asked for longest is dropped."""
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # now the most recently used
    cache.put("c", 3)
    assert cache.peek("b") is None and cache.peek("a") == 1 and cache.peek("c") == 3
    assert cache.peek("a") == 1  # a peek does not move it: "a" is still older than "c"
    cache.put("d", 4)
    assert cache.peek("a") is None and len(cache) == 2


def test_bytes_are_bounded_and_counted_through_replacements() -> None:
    """With a size, the bytes kept stay within ``max_bytes``; a replaced or popped value
    gives its bytes back."""
    cache: LRU[str, bytes] = LRU(100, max_bytes=10, size=len)
    cache.put("a", b"12345")
    cache.put("b", b"1234")
    assert cache.bytes == 9
    cache.put("a", b"12")  # replaced: 2 + 4
    assert cache.bytes == 6
    cache.put("c", b"123456")  # 12 > 10: the oldest ("b") goes
    assert cache.peek("b") is None and cache.bytes == 8
    assert cache.pop("a") == b"12" and cache.bytes == 6
    assert cache.pop("missing") is None
