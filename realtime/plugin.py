"""Wires the live channel into the app: after-commit listeners, broker, hub, live port.

It is one of ``app.state.plugins``: started after the state is built, stopped before the
database closes. Publishing happens here, after the commit and from the committed event
rows; when the broker cannot take an event, this process's own readers still get it at once
and every other process reads it from the database when the broker is back.
"""

from __future__ import annotations

import gc
import logging
from typing import Any
from urllib.parse import urlsplit

from db.models import Comment, Event
from realtime import protocol
from realtime.broker import Broker, MemoryBroker, RedisBroker
from realtime.endpoint import QUEUE_LIMIT, LiveServer
from realtime.hub import Hub
from server.shapes import staff_comment

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


class LivePlugin:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.hub: Hub | None = None
        self.broker: Broker | None = None
        self.server: LiveServer | None = None
        self.queue_limit = QUEUE_LIMIT  # frames an ASGI reader may have waiting

    async def start(self, state: Any) -> None:
        settings = state.settings
        self.comments = state.comments
        hub = self.hub = Hub(state.comments)
        broker: Broker
        if settings.redis_url:
            redis_broker = RedisBroker(settings.redis_url, settings.redis_prefix)
            state.extras.setdefault("health", {})["redis"] = redis_broker.health
            broker = redis_broker
        else:
            broker = MemoryBroker()
        self.broker = hub.broker = broker
        await broker.start(hub)
        listeners = state.discussion.listeners
        listeners.events.append(self.on_events)
        listeners.held.append(self.on_held)
        listeners.moderated.append(self.on_moderated)
        state.extras["live"] = self
        if settings.live_url:
            state.extras["live_url"] = settings.live_url
        if getattr(self.app.state, "tune_gc", False):
            tune_garbage_collector()
        if settings.live_port:
            self.server = LiveServer(self.app, hub, settings)
            try:
                await self.server.start(settings.live_host, settings.live_port)
            except OSError as exc:
                # The site's own /ws still serves; say so rather than refuse to start.
                log.error("live port %s:%s unavailable (%s); the live channel stays on /ws",
                          settings.live_host, settings.live_port, exc)
                self.server = None
            else:
                log.info("live channel on ws://%s:%s/ws (websockets, compression off)",
                         settings.live_host, settings.live_port)
                if not settings.live_url:
                    state.extras["live_url"] = live_port_url(settings.public_url,
                                                             settings.live_port)

    async def stop(self, state: Any) -> None:
        if self.server is not None:
            await self.server.stop()
        if self.hub is not None:
            await self.hub.close()
        if self.broker is not None:
            await self.broker.stop()

    # -- after-commit listeners --------------------------------------------------------------

    async def on_events(self, events: list[Event]) -> None:
        assert self.hub is not None and self.broker is not None
        frames = await self.hub.frames_for(events)
        for event, frame in zip(events, frames, strict=True):
            assert frame.seq is not None
            try:
                await self.broker.publish(event.uri, frame.seq, frame.payload)
            except Exception as exc:
                log.warning("event %s#%d not published (%s); local readers get it now, "
                            "others when the broker is back", event.uri, event.seq, exc)
                self.hub.receive(event.uri, frame.seq, frame.payload)

    async def on_held(self, comment: Comment) -> None:
        uri = await self.comments.uri_of(comment.thread_id)
        await self._moderation(protocol.comment_pending(staff_comment(comment, uri)))

    async def on_moderated(self, old: Comment, new: Comment, by: str) -> None:
        await self._moderation(protocol.comment_moderated(new.id, new.status, by))

    async def _moderation(self, payload: bytes) -> None:
        assert self.hub is not None and self.broker is not None
        try:
            await self.broker.publish_moderation(payload)
        except Exception as exc:
            log.warning("moderation event not published (%s); local staff get it", exc)
            self.hub.receive_moderation(payload)
