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

from server.errors import RateLimited


class PostLimiter:
    def __init__(
        self,
        rate: str | None,
        redis_url: str | None = None,
        prefix: str = "kibitz",
        connection_pool: object | None = None,
    ) -> None:
        self.items = parse_many(rate) if rate else []
        storage: Storage
        if redis_url:
            options = {"connection_pool": connection_pool} if connection_pool is not None else {}
            storage = RedisStorage(
                redis_url, implementation="redispy", key_prefix=f"{prefix}:limits", **options
            )
        else:
            storage = MemoryStorage()
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(storage)

    async def close(self) -> None:
        """Close the Redis connections the limit store opened (nothing to do in memory)."""
        bridge = getattr(self.storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None and hasattr(client, "aclose"):
            await client.aclose()

    async def hit(self, key: str, scope: str = "post") -> None:
        """Count one attempt; raise :class:`RateLimited` with Retry-After when over a limit."""
        for item in self.items:
            if not await self.limiter.hit(item, scope, key):
                stats = await self.limiter.get_window_stats(item, scope, key)
                raise RateLimited(math.ceil(stats.reset_time - time.time()))
