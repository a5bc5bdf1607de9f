"""bench/load.py, the benchmark's load generator, counts what servers really answered."""

from __future__ import annotations

import asyncio

from bench import load
from tests.helpers.servers import Server


async def test_load_counts_keep_alive_answers_from_kibitz(server: Server) -> None:
    """Against uvicorn (keep-alive), every request is answered and counted; 404s are errors."""
    port = int(server.url.rsplit(":", 1)[1])
    ok = await load.run(
        "127.0.0.1",
        port,
        lambda n: ("GET", "/api/counts?uri=/a", b"", {}),
        concurrency=4,
        duration=5,
        max_requests=40,
    )
    missing = await load.run(
        "127.0.0.1",
        port,
        lambda n: ("GET", "/nope", b"", {}),
        concurrency=2,
        duration=5,
        max_requests=6,
    )
    assert (ok.ok, ok.errors, ok.statuses) == (40, 0, {200: 40})
    assert len(ok.latencies) == 40 and ok.percentile(50) > 0
    assert (missing.ok, missing.errors) == (0, 6)


async def test_load_handles_connection_close_and_chunked_bodies() -> None:
    """A server that closes after each chunked answer (like gunicorn's sync worker) still counts."""
    served = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await reader.readuntil(b"\r\n\r\n")
        served += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
            b"\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        result = await load.run(
            "127.0.0.1",
            port,
            lambda n: ("GET", "/", b"", {}),
            concurrency=3,
            duration=5,
            max_requests=12,
        )
    assert (result.ok, result.errors, served) == (12, 0, 12)
