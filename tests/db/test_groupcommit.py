"""Group commit: callers that arrive together share one write and each hear their own outcome."""

from __future__ import annotations

import asyncio

import pytest

from db.groupcommit import GroupCommit


async def test_items_arriving_together_share_one_write() -> None:
    """Items queued while a write runs go into the next write together, in order, per key."""
    writes: list[tuple[str, list[int]]] = []

    async def write(key: str, items: list[int]) -> list[int | Exception]:
        writes.append((key, items))
        await asyncio.sleep(0.01)  # a write that takes time: what arrives meanwhile is batched
        return [ValueError(i) if i == 3 else i * 10 for i in items]

    group: GroupCommit[str, int, int] = GroupCommit(write)
    outcomes = await asyncio.gather(
        *(group.submit("a", i) for i in range(6)), group.submit("b", 99), return_exceptions=True
    )
    assert outcomes[:3] == [0, 10, 20] and outcomes[4:] == [40, 50, 990]
    assert isinstance(outcomes[3], ValueError)
    assert sorted(writes) == [("a", [0, 1, 2, 3, 4, 5]), ("b", [99])]
    assert await group.submit("a", 7) == 70  # the key's queue is gone, a new one starts


async def test_a_failed_write_fails_its_whole_batch_only() -> None:
    """When a write raises, every caller in it gets that error; the next batch still runs."""
    calls = 0

    async def write(key: str, items: list[int]) -> list[int | Exception]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk full")
        return list(items)

    group: GroupCommit[str, int, int] = GroupCommit(write)
    first = await asyncio.gather(group.submit("k", 1), group.submit("k", 2), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in first)
    assert await group.submit("k", 3) == 3


async def test_a_caller_that_goes_away_does_not_cancel_the_write() -> None:
    """Cancelling one waiting caller leaves the write, and the others' answers, intact."""
    started, release = asyncio.Event(), asyncio.Event()
    written: list[int] = []

    async def write(key: str, items: list[int]) -> list[int | Exception]:
        started.set()
        await release.wait()
        written.extend(items)
        return list(items)

    group: GroupCommit[str, int, int] = GroupCommit(write)
    leaving = asyncio.create_task(group.submit("k", 1))
    staying = asyncio.create_task(group.submit("k", 2))
    await started.wait()
    leaving.cancel()
    release.set()
    assert await staying == 2
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert written == [1, 2]
