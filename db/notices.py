"""Commits of every process on one PostgreSQL database, heard through ``LISTEN``.

A kept answer (``server/http/replay.py``) is given again while its version stands, and on
PostgreSQL asking costs a round trip: for a cached thread read or a counts question, more
than half of the request's CPU and most of the database's. Triggers (migration 130) send a
notice on :data:`CHANNEL` with every commit that changes a thread, an alias or a post,
whichever process or ``kibitz`` command commits it. :class:`ChangeNotices` holds one
connection of its own that listens; while no notice has arrived since a kept answer was
last checked, nothing it was made from has changed, and it is given again without a read.

What this trusts, and its bounds (docs/performance.md, "Answers given again"):

* A notice arrives after its commit, typically well under a millisecond later on one host:
  for that long, another process's commit may not yet show in answers given again. This
  process's own commits move the mark when they end (:mod:`db.postgres`), so a reader never
  misses what it just posted through the same process.
* A transaction that only adds comments sends no notice (``db.comments.ADDING``): notices
  serialise the commits that send them, and new comments are most commits. Another
  process's new comment shows within :data:`TRUST_FOR` instead; a removal, an edit, a
  moderation decision, votes, closing, a post or an alias ends kept answers at once.
* While the connection is not listening (not yet made, lost, being re-made), there is no
  mark: every kept answer is checked by a read, as before. Each new connection is a new
  epoch, so nothing checked before a gap is trusted after it.
* The connection is made when a kept answer is first asked for, and closed again after
  :data:`IDLE_AFTER` seconds in which none was: a process that only takes comments (a
  benchmark, a site nobody reads for a while) spends nothing on hearing every commit.
* A connection that hangs without failing is found by a ``SELECT 1`` every
  :data:`KEEPALIVE` seconds that must answer within :data:`KEEPALIVE`, and the mark moves
  every :data:`TRUST_FOR` seconds whatever arrives: a notice that never comes leaves a kept
  answer unchecked for at most that long (at most twenty checks a second per answer).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Hashable

import asyncpg

log = logging.getLogger("kibitz.db.notices")

CHANNEL = "kibitz_changes"
APPLICATION_NAME = "kibitz change notices"  # how the connection shows in pg_stat_activity
KEEPALIVE = 1.0  # seconds between liveness checks of the listening connection, and their limit
# Seconds a kept answer may go unchecked however quiet the notices are: the bound on how long
# another process's new comment may not show (adding sends no notice, migration 130).
TRUST_FOR = 0.05
IDLE_AFTER = 60.0  # seconds without a kept answer asked for, after which nothing listens
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0


class ChangeNotices:
    """A listening connection and the count of notices it heard (:meth:`mark`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.heard = 0  # notices received on the current connection's epoch
        self.epoch = 0  # connections made so far; each one starts trust afresh
        self.listening = False
        self.asked_at = 0.0  # when a mark was last asked for (a kept answer given again)
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def mark(self) -> Hashable | None:
        """Moves with every notice, every new connection and every :data:`TRUST_FOR`
        seconds; None while nothing listens (asking starts the listening)."""
        now = time.monotonic()
        self.asked_at = now
        if not self.listening:
            self.start()
            return None
        return (self.epoch, self.heard, int(now / TRUST_FOR))

    async def health(self) -> str:
        """For ``/healthz``: whether answers given again are skipping their checks."""
        return "listening" if self.listening else "not listening (every kept answer is checked)"

    def start(self) -> None:
        """Listen from now on, until :data:`IDLE_AFTER` seconds pass unasked."""
        if self._stopped or (self._task is not None and not self._task.done()):
            return
        self.asked_at = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="kibitz-change-notices"
        )

    async def stop(self) -> None:
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.listening = False

    def _heard(self, *_: object) -> None:
        self.heard += 1

    def _idle(self) -> bool:
        return time.monotonic() - self.asked_at > IDLE_AFTER

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._idle():
            try:
                await self._listen()
                backoff = BACKOFF_FIRST  # it listened until lost or idle: again soon, if asked
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("not listening for PostgreSQL change notices (%s); retrying", exc)
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(BACKOFF_MAX, backoff * 2)

    async def _listen(self) -> None:
        conn = await asyncpg.connect(
            self.url, timeout=KEEPALIVE * 5, server_settings={"application_name": APPLICATION_NAME}
        )
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _: lost.set())
            await conn.add_listener(CHANNEL, self._heard)
            self.epoch += 1
            self.heard = 0
            self.listening = True
            while not lost.is_set():
                try:
                    async with asyncio.timeout(KEEPALIVE):
                        await lost.wait()
                except TimeoutError:
                    if self._idle():
                        return  # nobody asks: stop listening until someone does
                    async with asyncio.timeout(KEEPALIVE):
                        await conn.execute("SELECT 1")
            log.warning("the PostgreSQL connection for change notices closed")
        finally:
            self.listening = False
            conn.terminate()
