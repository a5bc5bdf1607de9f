"""uvicorn's httptools protocol with the limits a public HTTP port needs.

uvicorn has an idle (keep-alive) timeout but no limit on how long a client may take to send
a request's head, nor on how large the head may be: httptools buffers a header however long
it is, and a connection that trickles a byte every few seconds is kept forever (2,100 such
connections once exhausted the file descriptors). This protocol adds both:

* the head (request line and headers) must arrive within :data:`HEADER_TIMEOUT` seconds of
  the connection opening or of the previous response; else ``408`` and the connection closes;
* the head may be at most :data:`MAX_HEADER_BYTES`; beyond that ``431`` and close, before
  anything more is read.

It also writes each response in one piece (:class:`CoalescingTransport`): uvicorn writes a
response's head and its body separately, and on loopback or a fast LAN each write is a
syscall and a TCP segment whose cost the sender pays, a third of the CPU of a small cached
answer such as ``/api/counts``.

And it gives answers again that a route allowed it to (``server/http/replay.py``): a thread
read or a counts question asked again costs its version check and a write, not a pass through
the application.

``kibitz serve`` uses it with ``timeout_keep_alive=IDLE_TIMEOUT``. deploy/nginx.conf keeps
its own limits in step (``client_header_timeout``, ``large_client_header_buffers``,
``keepalive_timeout``); docs/security.md lists them.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Hashable
from typing import Any

from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from server.http import replay

HEADER_TIMEOUT = 10.0  # seconds to send a request's head
MAX_HEADER_BYTES = 16 * 1024  # request line and headers together
IDLE_TIMEOUT = 5  # seconds a kept-alive connection may wait for its next request


def _plain(status: str, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n"
        "x-content-type-options: nosniff\r\n"
        "content-security-policy: default-src 'none'; frame-ancestors 'none'\r\n\r\n"
    ).encode() + body


TOO_LARGE = _plain("431 Request Header Fields Too Large", "Request headers too large.\n")
TOO_SLOW = _plain("408 Request Timeout", "Request headers took too long.\n")


class CoalescingTransport:
    """A transport whose writes within one turn of the event loop leave as one write.

    Order is kept (everything goes through here, websocket frames after an upgrade too) and
    nothing waits longer than the current callback: the buffer is flushed by the next
    ``call_soon``, or at once when the connection is closed. Everything else is the real
    transport's.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data if isinstance(data, bytes) else bytes(data))

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def _flush(self) -> None:
        if self._pending:
            pieces = self._pending
            self._pending = []
            if not self._transport.is_closing():
                # One vectored write (uvloop: writev): the pieces are not copied together.
                self._transport.writelines(pieces)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeadTooLarge(Exception):
    """Raised inside a parser callback; the protocol answers 431."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout = HEADER_TIMEOUT
    max_header_bytes = MAX_HEADER_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # waiting for (the rest of) a request's head
        self._head_bytes = 0  # bytes read while the head is incomplete
        self._head_size = 0  # bytes of request line and headers the parser handed over
        self._too_large = False
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing = CoalescingTransport(transport, self.loop)
        super().connection_made(coalescing)  # type: ignore[arg-type]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.max_header_bytes:
            self._too_large = True
            self._refuse(TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._head_size = True, 0, 0
        self._arm()

    # A head that arrives whole in one read is measured by what the parser hands over; an
    # exception from a callback makes uvicorn answer through send_400_response, below.
    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.max_header_bytes:
            self._too_large = True
            raise HeadTooLarge()

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            self._refuse(TOO_LARGE)
        else:
            super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        replays = self.app_state.get(replay.STATE_KEY)
        if not isinstance(replays, replay.Replays) or cycle.scope["method"] != "GET":
            super()._start_asgi_task(cycle, app)
            return
        # The key is taken before the application runs: middleware may change the scope.
        key = replay.request_key(cycle.scope) if cycle.scope["raw_path"] in replays.paths else None
        answer = self._answer(cycle, app, replays, key)
        if self.config.reset_contextvars:  # as uvicorn's own _start_asgi_task
            task = self.loop.create_task(answer, context=contextvars.Context())
        else:
            task = self.loop.create_task(answer)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _answer(
        self,
        cycle: RequestResponseCycle,
        app: ASGI3Application,
        replays: replay.Replays,
        key: Hashable | None,
    ) -> None:
        """Give a kept answer again if its version stands; else ask the application."""
        if key is not None:
            kept = replays.get(key)
            if kept is not None:
                messages = None
                if await replays.stands(kept):
                    gzip = kept.compressible and replay.accepts_gzip(cycle.scope)
                    if gzip:
                        replays.gzip(key, kept)
                    messages = kept.messages(gzip)
                if messages is not None:
                    replays.given += 1
                    for message in messages:
                        await cycle.send(message)  # type: ignore[arg-type]
                    return
                replays.drop(key, kept)
        recorder = replay.Recorder(cycle.send, cycle.scope)
        cycle.send = recorder  # type: ignore[method-assign]
        await cycle.run_asgi(app)
        kept = recorder.kept()
        if kept is None:
            return
        if key is None:
            replays.paths.add(cycle.scope["raw_path"])  # the next such request is keyed
        else:
            replays.put(key, kept)

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            if self._head_bytes:
                self._refuse(TOO_SLOW)
            else:
                self.transport.close()

    def _refuse(self, answer: bytes) -> None:
        self._disarm()
        self.transport.write(answer)
        self.transport.close()
