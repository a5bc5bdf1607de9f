"""``/ws`` and ``/ws/moderation`` on both transports kibitz offers.

* The site's own port: Starlette ``WebSocket``s under uvicorn (ASGI), handed over by the app
  before its middleware and router (``server.app.KibitzApp``). Each reader has a bounded list
  of frames drained by its send task.
* A port of its own (``kibitz serve --live-port``): the websockets library's server, in the
  same process and event loop. The hub writes each event's pre-built frame straight to the
  socket's transport, whose buffer is the bounded queue: no task wakes up per reader per
  event, which is what makes fan-out to 10,000 readers as fast as ``websockets.broadcast``
  (docs/performance.md has the figures).

Both follow websockets' patterns guide: a receive task and a send task per connection, and
when one ends the other is cancelled. Both refuse a foreign ``Origin`` before the upgrade
(403, or 1008 where the ASGI server decides). Incoming frames are limited in size; the
channel carries nothing from the reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State as WsState

from realtime import protocol
from realtime.hub import Hub, Subscriber
from realtime.protocol import Frame
from server.auth.identity import staff_credential
from server.errors import Forbidden, KibitzError, Unauthorized
from server.http import origins
from server.http.clients import address_key, client_address
from server.http.headers import NOT_A_PAGE, REFERRER_POLICY
from server.http.params import integer, required_uri
from server.settings import Settings, origin_of
from server.state import state_of

log = logging.getLogger("kibitz.live")

MAX_INCOMING = 4096  # bytes; readers send nothing but pings
WRITE_BUFFER_LIMIT = 256 * 1024  # bytes waiting in a socket's transport before it is cut off
KERNEL_SEND_BUFFER = 64 * 1024  # per live-port socket, so a stalled reader's cost is bounded
QUEUE_LIMIT = 512  # frames waiting for an ASGI reader before it is cut off
PING_INTERVAL = PING_TIMEOUT = 20.0
STAFF_RECHECK = 1.0  # seconds between re-checks of a moderation connection's credentials


# -- what a request asks for -----------------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    moderation: bool
    uri: str = ""
    since: int | None = None
    staff_id: int | None = None
    # Moderation only: are the credentials that opened the connection still good?
    still_staff: Callable[[], Awaitable[bool]] | None = None


def origin_allowed(settings: Settings, conn: HTTPConnection, *, apart: bool) -> bool:
    """The contract's rule; a live port also accepts the origin of its HTTP listener."""
    origin = conn.headers.get("origin")
    if origins.allowed(settings, conn, origin):
        return True
    if not (apart and origin and settings.http_port):
        return False
    hostname = urlsplit("//" + conn.headers.get("host", "")).hostname
    try:
        return origin_of(origin) == origin_of(f"http://{hostname}:{settings.http_port}")
    except ValueError:
        return False


async def authorise(conn: HTTPConnection, settings: Settings, *, apart: bool) -> Ask:
    if not origin_allowed(settings, conn, apart=apart):
        raise Forbidden("This origin may not open the live channel.")
    if conn.url.path == "/ws/moderation":
        credential = await staff_credential(conn)
        if credential is None:
            raise Unauthorized("Staff only: send a session cookie or an API token.")
        return Ask(
            moderation=True,
            staff_id=credential.member.id,
            still_staff=functools.partial(credential.valid, state_of(conn)),
        )
    uri = required_uri(conn.query_params)
    raw_since = conn.query_params.get("since")
    since: int | None = None
    if raw_since is not None:
        # Not a seq we ever gave out (-1): the reader gets a reset.
        since = integer(raw_since)
        since = -1 if since is None else since
    return Ask(moderation=False, uri=uri, since=since)


# -- one connection: a receive task and a send task ----------------------------------------


class Connection(Subscriber):
    __slots__ = ("rechecking",)

    def __init__(self) -> None:
        super().__init__()
        # Moderation connections only (``_serve`` makes it): readers are the thousands.
        self.rechecking: asyncio.Event | None = None

    def recheck(self) -> None:
        if self.rechecking is not None:
            self.rechecking.set()

    async def run(self) -> None:
        """The send side once the reader is live; returns when the connection must close."""
        raise NotImplementedError

    async def fail(self) -> None:
        """Close with 1011 after a server-side error; the receive side then ends."""
        raise NotImplementedError

    async def revoke(self) -> None:
        """Close with :data:`protocol.REVOKED`: the staff credentials died."""
        raise NotImplementedError


async def _guard(hub: Hub, conn: Connection, ask: Ask) -> None:
    """Re-check a moderation connection's credentials every :data:`STAFF_RECHECK` seconds,
    and at once when the broker says the member's access changed; close when they died.

    A database error is logged and the check tried again: while the database is down no
    held comment can reach the connection anyway.
    """
    assert ask.still_staff is not None and conn.rechecking is not None
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(conn.rechecking.wait(), STAFF_RECHECK)
        conn.rechecking.clear()
        try:
            if not await ask.still_staff():
                break
        except Exception:
            log.exception("re-checking staff %s failed", ask.staff_id)
    hub.staff.discard(conn)  # not one more message from here on
    log.info("staff %s lost access; their moderation connection is closed", ask.staff_id)


async def _serve(
    hub: Hub, conn: Connection, ask: Ask, receive: Callable[[], Awaitable[None]]
) -> None:
    """Run the send side as a task and the receive side in this one, until either ends.

    The receive side ends when the reader goes (or a close handshake completes); then the
    send task is cancelled. The send side ends by closing the connection (4000 after an
    overflow, 1011 after an error), which ends the receive side. The direct transport's
    send task ends as soon as the reader is live, because from then on the hub writes to it
    without a task: 10,000 readers cost no task wake-ups per event and one task each less.
    """

    async def produce() -> None:
        try:
            if ask.moderation:
                conn.staff_id = ask.staff_id
                hub.add_staff(conn)
            else:
                await hub.subscribe(conn, ask.uri, ask.since)
            await conn.run()
        except asyncio.CancelledError:
            raise
        except (ConnectionError, WebSocketDisconnect, ConnectionClosed):
            pass
        except Exception:
            log.exception("live connection failed")
            await conn.fail()

    async def guard() -> None:
        await _guard(hub, conn, ask)
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        await conn.revoke()  # the receive side ends with the close handshake

    if ask.still_staff is not None:
        conn.rechecking = asyncio.Event()
    producer = asyncio.create_task(produce())
    guarding = asyncio.create_task(guard()) if ask.still_staff is not None else None
    try:
        await receive()
    finally:
        producer.cancel()
        if guarding is not None:
            guarding.cancel()
        await asyncio.gather(producer, *[g for g in (guarding,) if g], return_exceptions=True)
        await hub.unsubscribe(conn)


# -- ASGI (Starlette on uvicorn): the site's own /ws ----------------------------------------


class QueuedConnection(Connection):
    """Frames wait in a plain list for the send task: an ``asyncio.Queue`` costs each reader
    three deques and an event (about 3 KiB) for what a list and one future do."""

    __slots__ = ("frames", "limit", "waiter", "websocket")

    def __init__(self, websocket: WebSocket, limit: int = QUEUE_LIMIT) -> None:
        super().__init__()
        self.websocket = websocket
        self.limit = limit
        self.frames: list[Frame | None] = []  # None: close with RESUME
        self.waiter: asyncio.Future[None] | None = None  # the send task, waiting for frames

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def push(self, frame: Frame) -> bool:
        if len(self.frames) >= self.limit:
            return False
        self.frames.append(frame)
        self._wake()
        return True

    async def send(self, frame: Frame) -> None:
        await self.websocket.send_text(frame.text)

    def cut_off(self) -> None:
        self.frames = [None]
        self._wake()

    async def run(self) -> None:
        while True:
            while not self.frames:
                self.waiter = asyncio.get_running_loop().create_future()
                try:
                    await self.waiter
                finally:
                    self.waiter = None
            frame = self.frames.pop(0)
            if frame is None:
                await self.websocket.close(protocol.RESUME, "resume")
                return
            await self.websocket.send_text(frame.text)

    async def fail(self) -> None:
        with contextlib.suppress(RuntimeError):
            await self.websocket.close(1011)

    async def revoke(self) -> None:
        with contextlib.suppress(RuntimeError):
            await self.websocket.close(protocol.REVOKED, "access revoked")


async def _asgi_receive(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        size = len(message.get("text") or "") + len(message.get("bytes") or b"")
        if size > MAX_INCOMING:
            await websocket.close(1009, "message too big")
            return


def _address(conn: HTTPConnection, settings: Settings) -> str:
    """What the per-address cap counts this connection as."""
    return address_key(client_address(conn, settings.trusted_proxies))


async def asgi_endpoint(websocket: WebSocket) -> None:
    state = state_of(websocket)
    live = state.live
    try:
        ask = await authorise(websocket, state.settings, apart=False)
    except KibitzError:
        await websocket.close(protocol.POLICY_VIOLATION)  # before accept: HTTP 403
        return
    address = _address(websocket, state.settings)
    if not live.admission.admit(address):
        log.info("live connection from %s refused: %d open", address, live.admission.limit)
        await websocket.close(protocol.POLICY_VIOLATION)  # before accept: HTTP 403
        return
    try:
        await websocket.accept()
        await _serve(
            live.hub,
            QueuedConnection(websocket, live.queue_limit),
            ask,
            lambda: _asgi_receive(websocket),
        )
    finally:
        live.admission.release(address)


PATHS = ("/ws", "/ws/moderation")
routes = [WebSocketRoute(path, asgi_endpoint) for path in PATHS]


# -- the websockets library's own server: a port of its own -----------------------------------


class DirectConnection(Connection):
    """Frames are written straight to the transport; its buffer is the bounded queue."""

    __slots__ = ("closing", "limit", "ws")

    def __init__(self, ws: ServerConnection, limit: int, closing: set[asyncio.Task[None]]) -> None:
        super().__init__()
        self.ws = ws
        self.limit = limit
        self.closing = closing  # close handshakes under way: the set keeps the tasks alive
        sock = ws.transport.get_extra_info("socket")
        if sock is not None:  # else the kernel would let a stalled reader hold megabytes
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER)

    def push(self, frame: Frame) -> bool:
        ws = self.ws
        if ws.protocol.state is not WsState.OPEN:
            return True  # closing: the receive task ends the connection
        transport = ws.transport
        if transport.get_write_buffer_size() > self.limit:
            return False
        transport.write(frame.wire)
        return True

    async def send(self, frame: Frame) -> None:
        await self.ws.send(frame.payload, text=True)

    def cut_off(self) -> None:
        closing = asyncio.get_running_loop().create_task(self.ws.close(protocol.RESUME, "resume"))
        self.closing.add(closing)
        closing.add_done_callback(self.closing.discard)

    async def run(self) -> None:
        return None  # live: the hub writes to this connection directly

    async def fail(self) -> None:
        await self.ws.close(1011)

    async def revoke(self) -> None:
        await self.ws.close(protocol.REVOKED, "access revoked")


async def _ws_receive(ws: ServerConnection) -> None:
    # Readers send nothing we act on; this loop only notices when they go. A close that is
    # not a normal one (1011 when we fail a connection) ends it the same way.
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


def _scope(app: Starlette, ws: ServerConnection, request: Request) -> dict[str, Any]:
    """Enough of an ASGI scope for Starlette's ``HTTPConnection`` (headers, URL, app)."""
    path, _, query = request.path.partition("?")
    headers: Headers = request.headers
    return {
        "type": "websocket",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "app": app,
        "headers": [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.raw_items()
        ],
        "server": ws.local_address[:2],
        "client": ws.remote_address[:2],
    }


def _refusal(ws: ServerConnection, status: int, text: str) -> Response:
    """A plain-text refusal with the same security headers as every HTTP answer of kibitz."""
    response = ws.respond(status, text)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = NOT_A_PAGE.decode()
    response.headers["Referrer-Policy"] = REFERRER_POLICY.decode()
    return response


class LiveServer:
    """``websockets.asyncio.server.serve`` on the live port, compression off."""

    def __init__(self, app: Starlette, hub: Hub, settings: Settings) -> None:
        self.app = app
        self.hub = hub
        self.settings = settings
        self.server: Server | None = None
        self._asks: weakref.WeakKeyDictionary[ServerConnection, Ask] = weakref.WeakKeyDictionary()
        self._releases: weakref.WeakKeyDictionary[
            ServerConnection, weakref.finalize[[str], ServerConnection]
        ] = weakref.WeakKeyDictionary()
        self.write_limit = WRITE_BUFFER_LIMIT
        self._closing: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> None:
        quiet = logging.getLogger("kibitz.live.websockets")
        quiet.setLevel(logging.WARNING)
        self.server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            compression=None,
            max_size=MAX_INCOMING,
            max_queue=4,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
            close_timeout=5,
            server_header=None,
            logger=quiet,
            reuse_port=self.settings.workers > 1,
        )

    async def stop(self) -> None:
        """Stop listening, then close every reader with 1012 so that it resumes elsewhere."""
        if self.server is not None:
            self.server.close(code=protocol.SERVICE_RESTART, reason="restart")
            await self.server.wait_closed()

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        path = request.path.partition("?")[0]
        if path not in PATHS:
            return _refusal(ws, HTTPStatus.NOT_FOUND, "Not Found\n")
        conn = HTTPConnection(_scope(self.app, ws, request))
        try:
            ask = await authorise(conn, self.settings, apart=True)
        except KibitzError as refused:
            return _refusal(ws, refused.status, f"{refused}\n")
        admission = state_of(conn).live.admission
        address = _address(conn, self.settings)
        if not admission.admit(address):
            log.info("live connection from %s refused: %d open", address, admission.limit)
            return _refusal(ws, HTTPStatus.TOO_MANY_REQUESTS, "Too many live connections.\n")
        # Released when the connection ends, or when it is collected should the handshake
        # fail before _handle runs.
        self._releases[ws] = weakref.finalize(ws, admission.release, address)
        self._asks[ws] = ask
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        ask = self._asks.pop(ws, None)
        release = self._releases.pop(ws, None)
        try:
            if ask is None:
                return
            await _serve(
                self.hub,
                DirectConnection(ws, self.write_limit, self._closing),
                ask,
                lambda: _ws_receive(ws),
            )
        finally:
            if release is not None:
                release()
