"""Group commit: writes that arrive together for one key share one transaction.

Comments on one thread are committed one after another by design: the thread's ``last_seq``
is bumped under its row lock so that seqs become visible in commit order. Each commit waits
for the disk, so one busy thread would take no more comments per second than the disk has
flushes. Here, while one transaction for a thread is being written, the comments that arrive
for the same thread wait in a queue and go into the next transaction together: one lock, one
flush, many comments. Every caller still gets its answer only after its own commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

# Writes one batch; returns, per item in order, its result or the exception for its caller.
BatchWriter = Callable[[K, list[T]], Awaitable[list["R | Exception"]]]


class GroupCommit(Generic[K, T, R]):
    def __init__(self, write: BatchWriter[K, T, R], max_batch: int = 64) -> None:
        self._write = write
        self._max_batch = max_batch
        self._queues: dict[K, list[tuple[T, asyncio.Future[R]]]] = {}
        self._drains: set[asyncio.Task[None]] = set()

    async def submit(self, key: K, item: T) -> R:
        """Queue ``item`` under ``key`` and wait until the transaction holding it commits."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is not None:
            queue.append((item, future))
        else:
            self._queues[key] = [(item, future)]
            drain = asyncio.create_task(self._drain(key))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        # A caller that goes away (client disconnected) does not cancel the write for others.
        return await asyncio.shield(future)

    async def _drain(self, key: K) -> None:
        queue = self._queues[key]
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while queue:
                batch = queue[: self._max_batch]
                del queue[: self._max_batch]
                try:
                    results = await self._write(key, [item for item, _ in batch])
                except Exception as exc:  # the whole transaction failed: everyone hears why
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            del self._queues[key]
            for _, future in batch + queue:  # left only if this task was cancelled (shutdown)
                if not future.done():
                    future.set_exception(RuntimeError("the server is shutting down"))
