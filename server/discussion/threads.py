"""Staff decisions about a thread: pinning comments, closing and reopening it.

Each change commits its event with it (:mod:`db.threads`); readers then learn of it through
the same after-commit listeners as comment changes, live and on resume.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from db import comments as store
from db.models import Comment, Thread, now
from db.threads import NotPinnable, ThreadStore
from server.discussion.actions import Listeners, notify
from server.discussion.errors import InvalidInput, UnknownComment
from server.i18n import N_
from server.settings import Settings

log = logging.getLogger("kibitz.threads")

AUTO_CLOSE_EVERY = 60.0  # seconds between looks for threads KIBITZ_CLOSE_AFTER_DAYS closes


class Threads:
    def __init__(self, settings: Settings, store: ThreadStore, listeners: Listeners) -> None:
        self.settings = settings
        self.store = store
        self.listeners = listeners

    async def set_closed(self, thread: Thread, closed: bool) -> None:
        events = await self.store.set_closed(thread.id, closed)
        await notify(self.listeners.events, events)

    async def set_pinned(self, comment_id: int, pinned: bool) -> Comment:
        try:
            comment, events = await self.store.set_pinned(comment_id, pinned)
        except store.UnknownComment:
            raise UnknownComment(comment_id) from None
        except NotPinnable:
            raise InvalidInput(
                N_("Only an approved top-level comment can be pinned."),
                fields={"id": N_("Only an approved top-level comment can be pinned.")},
            ) from None
        await notify(self.listeners.events, events)
        return comment

    async def close_due(self) -> int:
        """Close threads older than KIBITZ_CLOSE_AFTER_DAYS (0: none); how many were."""
        days = self.settings.close_after_days
        if not days:
            return 0
        events = await self.store.close_due(now() - timedelta(days=days))
        await notify(self.listeners.events, events)
        return len(events)

    async def run_auto_close(self) -> None:
        """A supervised loop: look every minute, survive any error."""
        while True:
            try:
                closed = await self.close_due()
                if closed:
                    days = self.settings.close_after_days
                    log.info("closed %d thread(s) after %d days", closed, days)
            except Exception:
                log.exception("closing old threads failed; trying again in a minute")
            await asyncio.sleep(AUTO_CLOSE_EVERY)
