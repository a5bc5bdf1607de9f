"""The in-memory moving windows behind the per-address posting limit."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from limits import parse_many

from server.discussion import ratelimit
from server.discussion.errors import Limited
from server.discussion.ratelimit import MemoryWindows, PostLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_moving_window_refuses_with_the_wait_and_frees_as_hits_age() -> None:
    """Past 2/minute a hit is refused with the seconds until the oldest one ages out."""
    clock = Clock()
    windows = MemoryWindows(parse_many("2/minute;3/hour"), clock)
    assert windows.hit("a") is None
    clock.now += 10
    assert windows.hit("a") is None
    clock.now += 5
    assert windows.hit("a") == 45  # the first hit leaves the minute 45 s from now
    assert windows.hit("b") is None  # other addresses are not affected
    clock.now += 46
    assert windows.hit("a") is None  # refused hits did not count
    clock.now += 61
    assert windows.hit("a") == 3600 - 122  # the hour is full now: 3 hits in it


def test_idle_keys_are_swept() -> None:
    """Addresses whose hits have all aged out are forgotten, so memory stays bounded."""
    clock = Clock()
    windows = MemoryWindows(parse_many("5/minute"), clock)
    for i in range(ratelimit.SWEEP_EVERY - 1):
        assert windows.hit(f"old-{i}") is None
    clock.now += 61
    assert windows.hit("new") is None  # the sweeping hit
    assert list(windows.hits) == ["new"]


@pytest.mark.redis
@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_a_refused_attempt_counts_in_no_window(store: str, redis_url: str) -> None:
    """Every window is asked before any records the hit: an attempt the second refuses has
    not used up the first (limits' own strategies, one window per call, count it there).

    On a real clock: Redis's, in the Redis case, so hosts whose clocks differ agree.
    """
    prefix = f"kibitz-test-{uuid.uuid4().hex}"
    limiter = PostLimiter("2/hour;1/second", redis_url if store == "redis" else None, prefix)
    try:
        await limiter.hit("198.51.100.7")
        with pytest.raises(Limited) as second:  # one a second
            await limiter.hit("198.51.100.7")
        assert second.value.retry_after == 1
        await asyncio.sleep(1.1)
        await limiter.hit("198.51.100.7")  # the refused one did not count in the hour
        await asyncio.sleep(1.1)
        with pytest.raises(Limited) as full:
            await limiter.hit("198.51.100.7")
        assert 3590 <= full.value.retry_after <= 3600  # the longest wait is the one named
        await limiter.hit("198.51.100.8")  # another address is not affected
        await limiter.clear("198.51.100.7")
        await limiter.hit("198.51.100.7")  # cleared: counted afresh
    finally:
        await limiter.close()
