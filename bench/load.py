"""A small asyncio HTTP/1.1 load generator for loopback benchmarks.

Why not an httpx client per request: at the rates kibitz reaches from its thread cache, the
client's own per-request work (request models, header objects, connection-pool bookkeeping)
costs as much CPU as the server's, and on a 2-core machine the client would be what is
measured. This speaks just enough HTTP/1.1 for the two servers compared: keep-alive when the
server allows it (uvicorn), a new connection per request when it does not (gunicorn's sync
workers send ``Connection: close``), Content-Length and chunked bodies.

Bounded in both count and time: no request starts after ``duration`` seconds or once
``max_requests`` have started, and each request has a timeout.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Request = tuple[str, str, bytes, dict[str, str]]  # method, path, body, extra headers


@dataclass
class Result:
    ok: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        """Latency in milliseconds at percentile ``p`` (0 to 100)."""
        if not self.latencies:
            return float("nan")
        if len(self.latencies) == 1:
            return self.latencies[0] * 1000
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return cuts[min(98, max(0, round(p) - 1))] * 1000


def merge(parts: list[Result]) -> Result:
    """One result from several runs of the same scenario (rate over their summed time)."""
    merged = Result()
    for part in parts:
        merged.ok += part.ok
        merged.errors += part.errors
        merged.latencies += part.latencies
        merged.elapsed += part.elapsed
        for status, n in part.statuses.items():
            merged.statuses[status] = merged.statuses.get(status, 0) + n
    return merged


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = [
            f"{method} {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length: int | None = None
        chunked = close = False
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and "close" in value:
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            data = b"".join(p[:-2] for p in parts)
        elif length is not None:
            data = await self.reader.readexactly(length)
        else:
            data = await self.reader.read()
            close = True
        if close:
            await self.close()
        return status, data


async def run(
    host: str,
    port: int,
    make_request: Callable[[int], Request],
    *,
    concurrency: int = 16,
    duration: float = 8.0,
    max_requests: int = 100_000,
    timeout: float = 120.0,
    expect: tuple[int, ...] = (200,),
) -> Result:
    """Keep ``concurrency`` requests in flight until time or count runs out; time each."""
    result = Result()
    started = time.perf_counter()
    issued = 0

    async def worker() -> None:
        nonlocal issued
        conn = Connection(host, port)
        try:
            while issued < max_requests and time.perf_counter() - started < duration:
                n = issued
                issued += 1
                method, path, body, headers = make_request(n)
                t0 = time.perf_counter()
                try:
                    status, _ = await asyncio.wait_for(
                        conn.request(method, path, body, headers), timeout
                    )
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                    result.errors += 1
                    await conn.close()
                    continue
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status in expect:
                    result.ok += 1
                    result.latencies.append(time.perf_counter() - t0)
                else:
                    result.errors += 1
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result
