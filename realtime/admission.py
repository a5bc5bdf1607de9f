"""How many live connections one client address may hold open in this process.

Without a cap, one address opening thousands of websockets exhausts the file descriptors
and memory every reader shares (2,000 sockets from one host once took ``/healthz`` down).
Both transports (the site's ``/ws`` and the live port) count against the same cap; an IPv6
client is counted by its /64 (:func:`server.http.clients.address_key`). The count is per
process; with ``--workers N`` an address may hold up to N times the cap on one host.
"""

from __future__ import annotations

from collections import Counter


class Admission:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()

    def admit(self, key: str) -> bool:
        """Count one more connection for ``key``; False (nothing counted) past the cap."""
        if self.open[key] >= self.limit:
            return False
        self.open[key] += 1
        return True

    def release(self, key: str) -> None:
        self.open[key] -= 1
        if self.open[key] <= 0:
            del self.open[key]
