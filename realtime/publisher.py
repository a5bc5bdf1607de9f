"""Wires the live channel into the app: after-commit listeners, broker, hub, live port.

Started after the state is built, stopped before the database closes. Publishing happens
here, after the commit and from the committed event rows, by one task per process that
takes the frames from a queue: a request never waits for the broker, so a slow or hung
Redis cannot stall a write. When the broker cannot take an event, this process's own readers
get it at once, the broker publishes it again once it is back, and every other process finds
it anyway with the hub's periodic check against the database (docs/live.md).
"""

from __future__ import annotations

import asyncio
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
from realtime.protocol import Frame
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
        self._outbox: asyncio.Queue[tuple[str, Frame]] = asyncio.Queue()
        self._publisher: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._voted: dict[str, set[int]] = {}  # votes notices not yet handed to the broker
        self._voting: asyncio.Task[None] | None = None

    def health_checks(self) -> dict[str, Callable[[], Awaitable[object]]]:
        if isinstance(self.broker, RedisBroker):
            return {"redis": self.broker.health}
        return {}

    async def start(self, listeners: Listeners, *, tune_gc: bool = False) -> None:
        await self.broker.start(self.hub)
        self.hub.start()
        self._publisher = asyncio.get_running_loop().create_task(self._publish_forever())
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

    def stopping(self) -> None:
        """The process was told to stop: close the live port's readers with 1012 right now.

        They resume on another process at once instead of waiting for this one's in-flight
        requests; the site's own ``/ws`` readers get 1012 from uvicorn the same moment.
        """
        if self.server is not None:
            task = asyncio.get_running_loop().create_task(self.server.stop())
            self._closing = task  # keep a reference until it is done

    async def stop(self) -> None:
        """Publish what is queued, then close the readers (1012: resume elsewhere)."""
        if self._publisher is not None:
            await self._drain_outbox()
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
        if self._voting is not None:  # counts are not events: readers get them with pages
            self._voting.cancel()
            await asyncio.gather(self._voting, return_exceptions=True)
        if self.server is not None:
            await self.server.stop()
        await self.hub.close()
        await self.broker.stop()

    # -- after-commit listeners --------------------------------------------------------------

    async def on_events(self, events: list[Event]) -> None:
        frames = await self.hub.frames_for(events)
        for event, frame in zip(events, frames, strict=True):
            self._outbox.put_nowait((event.uri, frame))

    async def _publish_forever(self) -> None:
        while True:
            uri, frame = await self._outbox.get()
            await self._publish(uri, frame)

    async def _drain_outbox(self) -> None:
        """On shutdown: publish what is queued (each waits at most the broker's timeout)."""
        while not self._outbox.empty():
            await self._publish(*self._outbox.get_nowait())

    async def _publish(self, uri: str, frame: Frame) -> None:
        assert frame.seq is not None
        try:
            await self.broker.publish(uri, frame.seq, frame.payload)
        except Exception as exc:
            log.warning(
                "event %s#%d not published (%s); local readers get it now, "
                "others when the broker is back",
                uri,
                frame.seq,
                exc,
            )
            self.hub.receive(uri, frame.seq, frame.payload)

    async def on_votes(self, uri: str, comment_ids: list[int]) -> None:
        """Note the comments; one task hands the broker what gathered meanwhile.

        Readers hear of votes at most once a second per thread anyway (the hub coalesces),
        so a busy thread's hundreds of votes a second cost one broker message per round trip
        instead of one each, and no vote's answer waits for the broker.
        """
        self._voted.setdefault(uri, set()).update(comment_ids)
        if self._voting is None or self._voting.done():
            self._voting = asyncio.get_running_loop().create_task(self._publish_votes())

    async def _publish_votes(self) -> None:
        while self._voted:
            voted, self._voted = self._voted, {}
            for uri, ids in voted.items():
                try:
                    await self.broker.publish_votes(uri, sorted(ids))
                except Exception as exc:
                    log.warning("votes on %s not published (%s); local readers get them", uri, exc)
                    self.hub.receive_votes(uri, sorted(ids))

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
