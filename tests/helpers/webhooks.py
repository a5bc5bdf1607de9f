"""A real HTTP receiver for webhook tests: records what arrives, verified with the same
Standard Webhooks library a site owner would use."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.helpers.servers import free_port


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int = 200

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers POST /hook with ``status`` (after ``delay`` seconds); /huge streams forever;
    /redirect answers 302 to /hook."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    secrets: list[str] = field(default_factory=list)  # verify when set

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def verified(self) -> list[Any]:
        """Every body received, each verified against one of ``secrets``; raises otherwise."""
        out = []
        for item in self.received:
            errors = []
            for secret in self.secrets:
                try:
                    out.append(Webhook(secret).verify(item.body, item.headers))
                    break
                except Exception as exc:
                    errors.append(exc)
            else:
                raise AssertionError(f"no secret verifies {item.headers}: {errors}")
        return out

    def of_type(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.json["type"] == kind]

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            if self.delay:
                await asyncio.sleep(self.delay)
            status = self.status
            self.received.append(Received(dict(request.headers), body, time.monotonic(), status))
            return Response("ok" if status < 300 else "nope", status_code=status)

        async def huge(request: Request) -> Response:
            await request.body()
            self.received.append(Received(dict(request.headers), b"{}", time.monotonic()))

            async def forever() -> AsyncIterator[bytes]:
                # 1 GiB, yielding to the loop: a closed connection makes send() return at
                # once, and a tight loop would starve everything else in this process.
                for _ in range(16384):
                    yield b"x" * 65536
                    await asyncio.sleep(0)

            return StreamingResponse(forever())

        async def redirect(request: Request) -> Response:
            return Response(status_code=302, headers={"location": self.url})

        return Starlette(
            routes=[
                Route("/hook", hook, methods=["POST"]),
                Route("/huge", huge, methods=["POST"]),
                Route("/redirect", redirect, methods=["POST"]),
            ]
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Receiver]:
        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=self.port, log_level="error", lifespan="off"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        try:
            yield self
        finally:
            server.should_exit = True
            server.force_exit = True
            await asyncio.wait_for(task, 10)


@dataclass
class ClosingReceiver:
    """A receiver that closes kept-alive connections under the sender: it answers the first
    request on a connection (200, kept alive), and on that connection's next request reads
    it whole and closes without answering, as a receiver's idle timeout firing just as a
    message goes out does. Plain sockets, so the closing is exact."""

    port: int = field(default_factory=free_port)
    answered: list[bytes] = field(default_factory=list)  # bodies answered 200, in order
    dropped: int = 0  # requests read and left unanswered (their connection closed)
    connections: int = 0
    _open: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._open.add(writer)
        try:
            for n in itertools.count():
                head = await reader.readuntil(b"\r\n\r\n")
                found = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                body = await reader.readexactly(int(found.group(1)) if found else 0)
                if n:
                    self.dropped += 1
                    return
                self.answered.append(body)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self._open.discard(writer)
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ClosingReceiver]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        try:
            yield self
        finally:
            server.close()
            for writer in list(self._open):  # the sender's pooled connections
                writer.close()
            await server.wait_closed()


async def wait_for(condition: Any, timeout: float = 15.0) -> None:
    """Poll ``condition()`` until true or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)
