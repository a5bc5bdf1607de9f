"""Posting limits per client address: moving windows, such as ``5/minute;30/hour``.

In memory for one process (:class:`MemoryWindows`); in Redis (:class:`RedisWindows`) when
``KIBITZ_REDIS_URL`` is set, so a limit holds across every process and host. The limits are
parsed by the ``limits`` library in both cases.

Both keep one list of recent hit times per key and ask every window of it at once: a hit is
recorded only when no window refuses it, and a refusal names the longest wait among them.
``limits``' own strategies ask one window per call: two round trips per comment for
``5/minute;30/hour``, and an attempt the hour refuses has already been counted by the minute.
"""

from __future__ import annotations

import asyncio
import math
import time
from bisect import bisect_right
from collections.abc import Callable

from limits import RateLimitItem, parse_many
from redis.asyncio import ConnectionPool, Redis

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
        wait = 0.0
        for amount, window in self.limits:
            if len(hits) - bisect_right(hits, now - window) >= amount:
                oldest = hits[len(hits) - amount] if amount > 0 else now
                wait = max(wait, oldest + window - now)
        if wait > 0:
            return max(1, math.ceil(wait))
        hits.append(now)
        self.until_sweep -= 1
        if self.until_sweep <= 0:
            self.until_sweep = SWEEP_EVERY
            cutoff = now - self.longest
            for idle in [k for k, times in self.hits.items() if not times or times[-1] <= cutoff]:
                del self.hits[idle]
        return None


# KEYS[1]: the key's hit times, newest first. ARGV: the largest amount, the longest window in
# whole seconds, then each window's amount and seconds. Returns nil (recorded) or the wait.
# Redis's own clock, so that hosts whose clocks differ count one window.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait = 0
for i = 3, #ARGV, 2 do
  local amount, window = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local oldest = now
  if amount > 0 then oldest = tonumber(redis.call('LINDEX', KEYS[1], amount - 1) or '0') end
  if oldest > now - window and oldest + window - now > wait then
    wait = oldest + window - now
  end
end
if wait > 0 then return tostring(wait) end
redis.call('LPUSH', KEYS[1], string.format('%.6f', now))
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[1]) - 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return false
"""


class RedisWindows:
    """:class:`MemoryWindows` in Redis: the same list of hit times per key, asked and
    appended to by one script, so a hit costs one round trip and is atomic across hosts."""

    def __init__(self, items: list[RateLimitItem], client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_HIT)  # EVALSHA; loads itself after a restart
        limits = [(item.amount, item.get_expiry()) for item in items]
        self._args = [
            max((amount for amount, _ in limits), default=0),
            max((window for _, window in limits), default=0),
            *(value for pair in limits for value in pair),
        ]

    async def hit(self, key: str) -> int | None:
        """Record a hit and return None, or refuse it (not recorded): seconds to wait."""
        wait = await self._script(keys=[f"{self.prefix}:{key}"], args=self._args)
        return None if wait is None else max(1, math.ceil(float(wait)))

    async def clear(self, key: str) -> None:
        await self.client.delete(f"{self.prefix}:{key}")


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
        self.redis: RedisWindows | None = None
        self._pool: ConnectionPool | None = None
        self._paused_until = 0.0
        if redis_url:
            if connection_pool is None:
                # A pool of our own, with timeouts, that :meth:`close` can close (a check cut
                # short by the timeout leaves its connection behind otherwise).
                self._pool = ConnectionPool.from_url(
                    redis_url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
                )
                connection_pool = self._pool
            self.redis = RedisWindows(
                self.items, Redis(connection_pool=connection_pool), f"{prefix}:limits"
            )
        else:
            self.memory = MemoryWindows(self.items)

    async def clear(self, key: str, scope: str = "post") -> None:
        """Forget the attempts counted for ``key`` (a login that succeeded)."""
        if self.memory is not None:
            self.memory.hits.pop(f"{scope}:{key}", None)
            return
        assert self.redis is not None
        await self.redis.clear(f"{scope}:{key}")

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
                assert self.redis is not None
                wait = await self.redis.hit(f"{scope}:{key}")
        except Exception:
            self._paused_until = time.monotonic() + PAUSE
            raise
        if wait is not None:
            raise Limited(wait)

    async def close(self) -> None:
        """Close the Redis connections the limit store opened (nothing to do in memory)."""
        if self.redis is not None:
            await self.redis.client.aclose()
        if self._pool is not None:
            await self._pool.disconnect()
