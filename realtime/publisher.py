"""Wires the live channel into the app: after-commit listeners, broker, hub, live port.

Started after the state is built, stopped before the database closes. Publishing happens
here, after the commit and from the committed event rows; when the broker cannot take an
event, this process's own readers still get it at once and every other process reads it from
the database when the broker is back.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.applications import Starlette

from db.comments import CommentStore
from db.models import Comment, Event
from realtime import protocol
from realtime.admission import Admission
from realtime.broker import Broker, MemoryBroker, RedisBroker
from realtime.endpoint import QUEUE_LIMIT, LiveServer
from realtime.hub import Hub
from server.discussion.actions import Listeners
from server.discussion.shapes import staff_comment
from server.settings import Settings

log = logging.getLogger("kibitz.live")


def live_port_url(public_url: str, port: int) -> str:
    """The public host on the live port: ``http://h:8000`` → ``ws://h:8001/ws``."""
    parts = urlsplit(public_url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{'wss' if parts.scheme == 'https' else 'ws'}://{host}:{port}/ws"


def tune_garbage_collector() -> None:
    """Keep the collector's pauses short while thousands of connections stay open.

    Each reader keeps about a hundred objects alive. Measured with 10,000 readers
    (docs/performance.md), the default thresholds let full collections stall the event loop
    for up to 2.7 s. Freezing what start-up built takes it out of every later collection, and
    a larger first threshold lets a request's short-lived objects die before they are
    promoted, so full collections come rarely. Only ``kibitz serve`` asks for this; it
    changes the whole process.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


class Live:
    """The live channel of one process: its broker and hub, made together, and the live port.

    The hub gets its broker at construction and the broker learns of the hub (as the
    :class:`realtime.broker.Receiver` it delivers to) when it starts.
    """

    def __init__(self, app: Starlette, settings: Settings, comments: CommentStore) -> None:
        self.settings = settings
        self.comments = comments
        self.broker: Broker = (
            RedisBroker(settings.redis_url, settings.redis_prefix)
            if settings.redis_url
            else MemoryBroker()
        )
        self.hub = Hub(comments, self.broker, replay_limit=settings.replay_limit)
        self.admission = Admission(settings.live_per_address)
        self.server: LiveServer | None = (
            LiveServer(app, self.hub, settings) if settings.live_port else None
        )
        self.queue_limit = QUEUE_LIMIT  # frames an ASGI reader may have waiting
        scheme = "wss" if settings.https else "ws"
        self.url = settings.live_url or f"{scheme}://{settings.public_origin.split('://', 1)[1]}/ws"

    def health_checks(self) -> dict[str, Callable[[], Awaitable[object]]]:
        if isinstance(self.broker, RedisBroker):
            return {"redis": self.broker.health}
        return {}

    async def start(self, listeners: Listeners, *, tune_gc: bool = False) -> None:
        await self.broker.start(self.hub)
        listeners.events.append(self.on_events)
        listeners.held.append(self.on_held)
        listeners.moderated.append(self.on_moderated)
        listeners.votes.append(self.on_votes)
        if tune_gc:
            tune_garbage_collector()
        settings = self.settings
        if self.server is not None and settings.live_port:
            try:
                await self.server.start(settings.live_host, settings.live_port)
            except OSError as exc:
                # The site's own /ws still serves; say so rather than refuse to start.
                log.error(
                    "live port %s:%s unavailable (%s); the live channel stays on /ws",
                    settings.live_host,
                    settings.live_port,
                    exc,
                )
                self.server = None
            else:
                log.info(
                    "live channel on ws://%s:%s/ws (websockets, compression off)",
                    settings.live_host,
                    settings.live_port,
                )
                if not settings.live_url:
                    self.url = live_port_url(settings.public_url, settings.live_port)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        await self.hub.close()
        await self.broker.stop()

    # -- after-commit listeners --------------------------------------------------------------

    async def on_events(self, events: list[Event]) -> None:
        frames = await self.hub.frames_for(events)
        for event, frame in zip(events, frames, strict=True):
            assert frame.seq is not None
            try:
                await self.broker.publish(event.uri, frame.seq, frame.payload)
            except Exception as exc:
                log.warning(
                    "event %s#%d not published (%s); local readers get it now, "
                    "others when the broker is back",
                    event.uri,
                    event.seq,
                    exc,
                )
                self.hub.receive(event.uri, frame.seq, frame.payload)

    async def on_votes(self, uri: str, comment_ids: list[int]) -> None:
        try:
            await self.broker.publish_votes(uri, comment_ids)
        except Exception as exc:
            log.warning("votes on %s not published (%s); local readers get them", uri, exc)
            self.hub.receive_votes(uri, comment_ids)

    async def on_held(self, comment: Comment) -> None:
        uri = await self.comments.uri_of(comment.thread_id)
        await self._moderation(protocol.comment_pending(staff_comment(comment, uri)))

    async def on_moderated(self, old: Comment, new: Comment, by: str) -> None:
        await self._moderation(protocol.comment_moderated(new.id, new.status, by))

    async def staff_changed(self, staff_id: int) -> None:
        """An account was disabled, a token revoked or a session ended: every process
        re-checks that member's moderation connections now and closes the dead ones."""
        await self._moderation(protocol.staff_recheck(staff_id))

    async def _moderation(self, payload: bytes) -> None:
        try:
            await self.broker.publish_moderation(payload)
        except Exception as exc:
            log.warning("moderation event not published (%s); local staff get it", exc)
            self.hub.receive_moderation(payload)
