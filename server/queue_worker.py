"""The loop of a worker that empties a durable queue: the mail sender and the webhook worker.

Both queues are tables (``db.mail``, ``db.webhooks``) whose rows a worker claims with a lease
in its :attr:`QueueWorker.owner`'s name, so every process can run one. The loop does what is
due, then sleeps until the next row is due, the poll interval passes, or a commit wakes it;
a wake that comes while a round runs is kept and starts the next round at once, so a row
queued at that moment does not wait for the poll. The loop is supervised: any error, a lost
database included, is logged and the round tried again after a backoff, and the task never
ends on its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
from abc import ABC, abstractmethod


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds before try ``attempt + 1``: doubling from ``base`` up to ``cap``, jittered
    down by up to half so that retries of many rows and processes do not come in step."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    return delay * (0.5 + random.random() / 2)


class QueueWorker(ABC):
    """One queue's worker: :meth:`_round` does what is due, :meth:`_until_next_due` says
    how long to sleep after it. ``poll`` bounds that sleep, ``lease`` is how long a claimed
    row stays this worker's, and a failed row is retried after :func:`backoff` with
    ``backoff_base`` and ``backoff_cap``."""

    def __init__(
        self,
        log: logging.Logger,
        name: str,
        poll: float,
        lease: float,
        backoff_base: float,
        backoff_cap: float,
    ) -> None:
        self.log = log
        self.name = name  # says whose failure a log line is
        self.poll = poll
        self.lease = lease
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        # Names this worker's leases: two workers in one process differ too.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something was committed (or a slot came free): look now, not at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Work forever; the caller cancels the task at shutdown."""
        failures = 0
        woken = False
        while True:
            self._wake.clear()
            try:
                await self._round(woken)
                failures = 0
                # Woken during the round: the next starts at once, no need to ask when.
                wait = 0.0 if self._wake.is_set() else await self._until_next_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                wait = backoff(failures, 1.0, 60.0)
                self.log.exception("%s failed; trying again in %.0f s", self.name, wait)
            if self._wake.is_set():
                woken = True
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
                woken = True
            except TimeoutError:
                woken = False

    @abstractmethod
    async def _round(self, woken: bool) -> None:
        """Claim and handle what is due; ``woken``: :meth:`wake` ended the last sleep."""

    @abstractmethod
    async def _until_next_due(self) -> float:
        """Seconds to sleep unless woken: until the next row is due, at most the poll."""
