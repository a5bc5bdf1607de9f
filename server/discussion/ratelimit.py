"""Posting limits per client address: moving windows, such as ``5/minute;30/hour``.

In memory for one process (:class:`MemoryWindows`); in Redis through the ``limits`` library
(redis-py, sharing the app's connection pool) when ``KIBITZ_REDIS_URL`` is set, so a limit
holds across every process and host. The limits are parsed by ``limits`` in both cases.
"""

from __future__ import annotations

import asyncio
import math
import time
from bisect import bisect_right
from collections.abc import Callable

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import ConnectionPool

from server.discussion.errors import Limited

# Seconds a limit check in Redis may take: a hung Redis must not stall a request. Callers treat
# the timeout like an unreachable store (the attempt goes through unlimited). After a failure
# the store is not asked again for PAUSE seconds, so only one request in that time waits.
TIMEOUT = 1.0
PAUSE = 5.0

# Sweep keys whose hits have all expired once per this many hits: memory stays bounded by the
# addresses seen in the longest window, at a cost per hit that does not grow with them.
SWEEP_EVERY = 1024


class MemoryWindows:
    """Moving windows in this process's memory: for each key, the times of its recent hits.

    Why not ``limits``' own MemoryStorage: after every hit it schedules a sweep of every key
    it holds, each through a thread, so the cost of one comment grows with the number of
    addresses that posted in the last hour. Here a hit touches its own key only (a handful of
    timestamps, at most the largest limit), and an occasional sweep drops idle keys.
    """

    def __init__(
        self, items: list[RateLimitItem], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        self.limits = [(item.amount, float(item.get_expiry())) for item in items]
        self.longest = max((window for _, window in self.limits), default=0.0)
        self.hits: dict[str, list[float]] = {}
        self.until_sweep = SWEEP_EVERY

    def hit(self, key: str) -> int | None:
        """Record a hit and return None, or refuse it (not recorded): seconds to wait."""
        now = self.clock()
        hits = self.hits.setdefault(key, [])
        del hits[: bisect_right(hits, now - self.longest)]
        for amount, window in self.limits:
            if len(hits) - bisect_right(hits, now - window) >= amount:
                return max(1, math.ceil(hits[len(hits) - amount] + window - now))
        hits.append(now)
        self.until_sweep -= 1
        if self.until_sweep <= 0:
            self.until_sweep = SWEEP_EVERY
            cutoff = now - self.longest
            for idle in [k for k, times in self.hits.items() if not times or times[-1] <= cutoff]:
                del self.hits[idle]
        return None


class PostLimiter:
    def __init__(
        self,
        rate: str | None,
        redis_url: str | None = None,
        prefix: str = "kibitz",
        connection_pool: ConnectionPool | None = None,
    ) -> None:
        self.items = parse_many(rate) if rate else []
        self.memory: MemoryWindows | None = None
        self.limiter: MovingWindowRateLimiter | None = None
        self._pool: ConnectionPool | None = None
        self._paused_until = 0.0
        self.storage: RedisStorage | None = None
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
            self.storage = storage
            self.limiter = MovingWindowRateLimiter(storage)
        else:
            self.memory = MemoryWindows(self.items)

    async def clear(self, key: str, scope: str = "post") -> None:
        """Forget the attempts counted for ``key`` (a login that succeeded)."""
        if self.memory is not None:
            self.memory.hits.pop(f"{scope}:{key}", None)
            return
        assert self.limiter is not None
        for item in self.items:
            await self.limiter.clear(item, scope, key)

    async def hit(self, key: str, scope: str = "post") -> None:
        """Count one attempt; raise :class:`Limited` with Retry-After when over a limit.

        In Redis: raises :class:`TimeoutError` when the store takes longer than
        :data:`TIMEOUT`, and at once for :data:`PAUSE` seconds after the store failed.
        """
        if self.memory is not None:
            wait = self.memory.hit(f"{scope}:{key}")
            if wait is not None:
                raise Limited(wait)
            return
        if not self.items:
            return
        if time.monotonic() < self._paused_until:
            raise TimeoutError("the rate limit store failed moments ago")
        try:
            async with asyncio.timeout(TIMEOUT):  # no task of its own, unlike wait_for
                await self._hit_redis(key, scope)
        except Limited:
            raise
        except Exception:
            self._paused_until = time.monotonic() + PAUSE
            raise

    async def close(self) -> None:
        """Close the Redis connections the limit store opened (nothing to do in memory)."""
        bridge = getattr(self.storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None and hasattr(client, "aclose"):
            await client.aclose()
        if self._pool is not None:
            await self._pool.disconnect()

    async def _hit_redis(self, key: str, scope: str) -> None:
        assert self.limiter is not None
        for item in self.items:
            if not await self.limiter.hit(item, scope, key):
                stats = await self.limiter.get_window_stats(item, scope, key)
                raise Limited(math.ceil(stats.reset_time - time.time()))
