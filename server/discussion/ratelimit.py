"""Posting limits per client address, with the ``limits`` library.

In memory for one process; in Redis (through redis-py, sharing the app's connection pool)
when ``KIBITZ_REDIS_URL`` is set, so a limit holds across every process and host.
"""

from __future__ import annotations

import math
import time

from limits import parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import ConnectionPool

from server.discussion.errors import Limited


class PostLimiter:
    def __init__(
        self,
        rate: str | None,
        redis_url: str | None = None,
        prefix: str = "kibitz",
        connection_pool: ConnectionPool | None = None,
    ) -> None:
        self.items = parse_many(rate) if rate else []
        storage: Storage
        if redis_url:
            options = {"connection_pool": connection_pool} if connection_pool is not None else {}
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
        """Count one attempt; raise :class:`Limited` with Retry-After when over a limit."""
        for item in self.items:
            if not await self.limiter.hit(item, scope, key):
                stats = await self.limiter.get_window_stats(item, scope, key)
                raise Limited(math.ceil(stats.reset_time - time.time()))
