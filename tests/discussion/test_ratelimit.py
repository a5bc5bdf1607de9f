"""The in-memory moving windows behind the per-address posting limit."""

from __future__ import annotations

from limits import parse_many

from server.discussion import ratelimit
from server.discussion.ratelimit import MemoryWindows


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
