"""A TCP proxy for fault tests: put it between kibitz and Redis or PostgreSQL, then cut it.

It runs in the test's event loop. ``block()`` cuts every open connection and refuses new ones
(the service looks dead to whoever goes through the proxy, while others still reach it);
``unblock()`` lets connections through again. ``latency`` delays every chunk each way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Proxy:
    def __init__(self, target_port: int, *, latency: float = 0.0) -> None:
        self.target_port = target_port
        self.latency = latency
        self.blocked = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.blocked = True
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def block(self) -> None:
        self.blocked = True
        self.cut()

    def unblock(self) -> None:
        self.blocked = False

    def cut(self) -> None:
        """Close every connection now, mid-query or not."""
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._relay(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_writer: asyncio.StreamWriter | None = None
        try:
            if self.blocked:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                return
            self._open.update((writer, up_writer))
            await asyncio.gather(
                self._pipe(reader, up_writer),
                self._pipe(up_reader, writer),
                return_exceptions=True,
            )
        finally:  # whatever ended it (a cut, EOF, cancellation): both sockets are closed
            for w in (writer, up_writer):
                if w is not None:
                    self._open.discard(w)
                    w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.latency:
                    await asyncio.sleep(self.latency)
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()


@contextlib.asynccontextmanager
async def proxy(target_port: int, *, latency: float = 0.0) -> AsyncIterator[Proxy]:
    running = Proxy(target_port, latency=latency)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
