"""Posting limits per client address, with the ``limits`` library.

In memory for one process; in Redis (through redis-py, sharing the app's connection pool)
when ``KIBITZ_REDIS_URL`` is set, so a limit holds across every process and host.
"""

from __future__ import annotations

import asyncio
import math
import time

from limits import parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import ConnectionPool

from server.discussion.errors import Limited

# Seconds a limit check may take: a hung Redis must not stall a request. Callers treat the
# timeout like an unreachable store (the attempt goes through unlimited). After a failure the
# store is not asked again for PAUSE seconds, so only one request in that time waits.
TIMEOUT = 1.0
PAUSE = 5.0


class PostLimiter:
    def __init__(
        self,
        rate: str | None,
        redis_url: str | None = None,
        prefix: str = "kibitz",
        connection_pool: ConnectionPool | None = None,
    ) -> None:
        self.items = parse_many(rate) if rate else []
        self._pool: ConnectionPool | None = None
        self._paused_until = 0.0
        storage: Storage
        if redis_url:
            if connection_pool is None:
                # A pool of our own, with timeouts, that :meth:`close` can close (a check cut
                # short by the timeout leaves its connection behind otherwise).
                self._pool = ConnectionPool.from_url(
                    redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
                )
                connection_pool = self._pool
            options = {"connection_pool": connection_pool}
            # limits documents ``connection_pool`` but types ``**options`` as scalars.
            storage = RedisStorage(
                redis_url,
                implementation="redispy",
                key_prefix=f"{prefix}:limits",
                **options,  # type: ignore[arg-type]
            )
        else:
            storage = MemoryStorage()
        self.limiter = MovingWindowRateLimiter(storage)

    async def hit(self, key: str, scope: str = "post") -> None:
        """Count one attempt; raise :class:`Limited` with Retry-After when over a limit.

        Raises :class:`TimeoutError` when the store takes longer than :data:`TIMEOUT`, and
        at once for :data:`PAUSE` seconds after the store failed.
        """
        if not self.items:
            return
        if time.monotonic() < self._paused_until:
            raise TimeoutError("the rate limit store failed moments ago")
        try:
            await asyncio.wait_for(self._hit(key, scope), TIMEOUT)
        except Limited:
            raise
        except Exception:
            self._paused_until = time.monotonic() + PAUSE
            raise

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect()

    async def _hit(self, key: str, scope: str) -> None:
        for item in self.items:
            if not await self.limiter.hit(item, scope, key):
                stats = await self.limiter.get_window_stats(item, scope, key)
                raise Limited(math.ceil(stats.reset_time - time.time()))
