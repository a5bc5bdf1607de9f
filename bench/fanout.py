"""Fan-out benchmark: N readers on one thread of a real ``kibitz serve`` (PostgreSQL + Redis).

For each of C comments: POST it, then time from the POST's response to the moment the *last*
reader received the event (and, for reference, from the moment the POST was sent). Prints
p50/p99/max, the server's resident memory per connected reader, and the same measure for a
bare ``websockets`` broadcast server (GET /publish → ``websockets.broadcast``) in the same
run, as a ratio.

Readers are raw asyncio protocols spread over a few client processes: they do the opening
handshake, answer pings and find each frame's ``seq`` without a JSON parser, so the clients
cost as little as possible and the server is what is measured.

    .venv/bin/python bench/fanout.py --readers 1000 10000 --comments 20 \\
        --database-url postgresql://postgres@127.0.0.1:5432/test \\
        --redis-url redis://127.0.0.1:6379/0 [--transport direct asgi]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import re
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEQ = re.compile(rb'^\{"type":"comment\.created","seq":(\d+)')
HANDSHAKE = (
    "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# -- the client side: raw websocket readers ----------------------------------------------------


class RawReader(asyncio.Protocol):
    def __init__(self, path: str, host: str, tally: Tally) -> None:
        self.request = HANDSHAKE.format(
            path=path, host=host, key=base64.b64encode(os.urandom(16)).decode()
        ).encode()
        self.tally = tally
        self.buffer = b""
        self.open = False
        self.ready = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed during handshake"))
        else:
            self.tally.lost += 1

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buffer = self.buffer + data
        if not self.open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if self.ready.done():  # given up on already
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(buffer[:80].decode(errors="replace")))
                return
            self.open = True
            self.ready.set_result(None)
            buffer = buffer[end + 4 :]
        while len(buffer) >= 2:
            length = buffer[1] & 0x7F
            start = 2
            if length == 126:
                if len(buffer) < 4:
                    break
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    break
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                break
            opcode = buffer[0] & 0x0F
            payload = buffer[start : start + length]
            buffer = buffer[start + length :]
            if opcode == 0x1:
                self.text(payload, now)
            elif opcode == 0x9 and self.transport is not None:  # ping → masked pong
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
        self.buffer = buffer

    def text(self, payload: bytes, now: float) -> None:
        """A text message arrived: note when each event's seq did."""
        found = SEQ.match(payload)
        if found:
            self.tally.received(int(found.group(1)), now)


ReaderT = TypeVar("ReaderT", bound=RawReader)


@dataclass
class Tally:
    readers: int
    conn: Any
    lost: int = 0
    seen: dict[int, list[float]] = field(default_factory=dict)

    def received(self, seq: int, when: float) -> None:
        entry = self.seen.setdefault(seq, [0, when, when])
        entry[0] += 1
        entry[2] = max(entry[2], when)
        if entry[0] == self.readers:
            self.conn.send(("done", seq, entry[1], entry[2]))
            del self.seen[seq]


async def open_reader(make: Callable[[], ReaderT], host: str, port: int, timeout: float) -> ReaderT:
    """Connect one reader and wait for its handshake; closed again if that fails."""
    transport, reader = await asyncio.get_running_loop().create_connection(make, host, port)
    try:
        await asyncio.wait_for(reader.ready, timeout)
    except BaseException:
        transport.close()
        raise
    return reader


def client_process(conn: Any, host: str, port: int, path: str, count: int) -> None:
    raise_fd_limit()

    async def main() -> None:
        tally = Tally(count, conn)
        gate = asyncio.Semaphore(64)
        readers: list[RawReader] = []

        async def open_one() -> None:
            async with gate:
                for attempt in range(20):
                    try:
                        readers.append(
                            await open_reader(
                                lambda: RawReader(path, f"{host}:{port}", tally), host, port, 300
                            )
                        )
                        return
                    except (OSError, ConnectionError, TimeoutError):
                        await asyncio.sleep(0.2 * (attempt + 1))
                raise RuntimeError("could not connect a reader")

        await asyncio.gather(*(open_one() for _ in range(count)))
        conn.send(("ready", len(readers)))
        while True:  # stay until the parent says stop
            if conn.poll():
                if conn.recv() == "stop":
                    break
            await asyncio.sleep(0.05)
        for r in readers:
            if r.transport:
                r.transport.close()
        conn.send(("lost", tally.lost))

    asyncio.run(main())


# -- measuring one server ----------------------------------------------------------------------


@dataclass
class Result:
    name: str
    readers: int
    from_response: list[float]
    from_request: list[float]
    kib_per_reader: float

    @staticmethod
    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def line(self) -> str:
        r, q = self.from_response, self.from_request
        return (
            f"{self.name:>10} {self.readers:>6} readers: from response p50 "
            f"{1000 * self.pct(r, 0.5):6.1f} p99 {1000 * self.pct(r, 0.99):6.1f} max "
            f"{1000 * max(r):6.1f} ms | from request p50 {1000 * self.pct(q, 0.5):6.1f} "
            f"p99 {1000 * self.pct(q, 0.99):6.1f} ms | {self.kib_per_reader:5.1f} KiB/reader"
        )


def spread(readers: int, procs: int) -> list[int]:
    return [readers // procs + (1 if i < readers % procs else 0) for i in range(procs)]


async def measure(
    name: str,
    targets: list[tuple[str, int, str]],
    readers: int,
    comments: int,
    post: Any,
    server_pids: list[int],
    client_procs: int,
) -> Result:
    """Connect ``readers`` spread over ``targets`` (host, port, path), then time ``post``."""
    loop = asyncio.get_running_loop()
    before = sum(rss_kib(pid) for pid in server_pids)
    pipes, procs = [], []
    per_target = spread(readers, len(targets))
    for (host, port, path), share in zip(targets, per_target, strict=True):
        per = max(1, min(client_procs // len(targets), share // 200 or 1))
        for count in spread(share, per):
            parent, child = mp.Pipe()
            proc = mp.Process(
                target=client_process, args=(child, host, port, path, count), daemon=True
            )
            proc.start()
            pipes.append(parent)
            procs.append(proc)
    for pipe in pipes:
        message = await loop.run_in_executor(None, pipe.recv)
        assert message[0] == "ready", message
    await asyncio.sleep(2.5)  # presence settles (at most one message a second)
    for pipe in pipes:  # drop anything that arrived while connecting
        while pipe.poll():
            pipe.recv()
    after = sum(rss_kib(pid) for pid in server_pids)
    from_response, from_request = [], []
    for i in range(comments):
        sent = time.monotonic()
        seq, responded = await post(i)
        last = 0.0
        for pipe in pipes:
            while True:
                message = await loop.run_in_executor(None, pipe.recv)
                if message[0] == "done" and message[1] == seq:
                    last = max(last, message[3])
                    break
        from_response.append(last - responded)
        from_request.append(last - sent)
        await asyncio.sleep(0.05)
    for pipe in pipes:
        pipe.send("stop")
    lost = 0
    for pipe in pipes:
        while True:
            message = await loop.run_in_executor(None, pipe.recv)
            if message[0] == "lost":
                lost += message[1]
                break
    for proc in procs:
        proc.join(10)
    if lost:
        print(f"  ({lost} readers were disconnected during the run)")
    return Result(name, readers, from_response, from_request, (after - before) / readers)


# -- the servers -------------------------------------------------------------------------------


def bare_server(port: int) -> None:
    """websockets' own broadcast: what the issue measured as the floor."""
    from websockets.asyncio.server import broadcast, serve
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    raise_fd_limit()

    async def main() -> None:
        server: Any = None

        def process_request(connection: Any, request: Any) -> Any:
            if request.path.startswith("/publish"):
                seq = int(request.path.rsplit("=", 1)[1])
                body = {
                    "type": "comment.created",
                    "seq": seq,
                    "comment": {
                        "id": seq,
                        "parent": None,
                        "author": "Bench",
                        "website": None,
                        "html": "<p>" + "x" * 160 + "</p>",
                        "created": "2026-11-29T08:20:00Z",
                        "edited": None,
                        "status": "approved",
                        "staff": False,
                    },
                }
                # Like kibitz, answer first and fan out right after (kibitz's response and
                # its fan-out both follow the publish), so both are timed from the response.
                asyncio.get_running_loop().call_soon(
                    broadcast, server.connections, json.dumps(body, separators=(",", ":"))
                )
                return Response(200, "OK", Headers([("Content-Length", "0")]), b"")
            return None

        async def handler(ws: Any) -> None:
            await ws.wait_closed()

        server = await serve(
            handler,
            "127.0.0.1",
            port,
            process_request=process_request,
            compression=None,
            max_size=4096,
            logger=None,
        )
        await server.serve_forever()

    asyncio.run(main())


def wait_http(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


@contextlib.contextmanager
def kibitz_processes(
    database_url: str, redis_url: str, count: int = 1, extra: dict[str, str] | None = None
) -> Iterator[list[tuple[subprocess.Popen[bytes], int, int]]]:
    """``count`` independent ``kibitz serve`` processes on one database and Redis prefix;
    ``extra`` settings on top of the bench's (``KIBITZ_…``)."""
    data = Path(f"/tmp/kibitz-bench-{uuid.uuid4().hex[:8]}")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KIBITZ_DATABASE_URL": database_url,
        "KIBITZ_REDIS_URL": redis_url,
        "KIBITZ_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:6]}",
        "KIBITZ_DATA_DIR": str(data),
        "KIBITZ_SECRET_KEY": "bench",
        "KIBITZ_MODERATION": "none",
        "KIBITZ_POST_RATE": "off",
        "KIBITZ_LIVE_PER_ADDRESS": "1000000",  # every bench reader is 127.0.0.1
        **(extra or {}),
    }
    started = []
    try:
        for _ in range(count):
            port, live = free_port(), free_port()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "server",
                    "serve",
                    "--port",
                    str(port),
                    "--live-port",
                    str(live),
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(os.environ["BENCH_SERVER_LOG"], "ab")
                if os.environ.get("BENCH_SERVER_LOG")
                else subprocess.DEVNULL,
            )
            started.append((proc, port, live))
        for _, port, _ in started:
            wait_http(f"http://127.0.0.1:{port}/healthz")
        yield started
    finally:
        for proc, _, _ in started:
            proc.terminate()
        for proc, _, _ in started:
            proc.wait(30)


@contextlib.asynccontextmanager
async def fresh_database(base_url: str) -> Any:
    import asyncpg

    name = f"kibitz_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(base_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = base_url.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        admin = await asyncpg.connect(base_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def make_post(database_url: str, slug: str) -> str:
    from db.database import connect
    from db.migrate import migrate
    from db.posts import PostStore

    db = await connect(database_url)
    try:
        await migrate(db)
        await PostStore(db).add(slug=slug, title=slug, author="Bench", body_html="<p>x</p>")
    finally:
        await db.close()
    return f"/posts/{slug}"


def kibitz_poster(client: Any, url: str, uri: str) -> Any:
    text = "A comment of about the size people write, " * 4

    async def post(i: int) -> tuple[int, float]:
        response = await client.post(
            url + "/api/comments",
            json={
                "uri": uri,
                "author": "Bench",
                "email": "bench@example.org",
                "text": f"{i} {text}",
            },
        )
        responded = time.monotonic()
        assert response.status_code == 201, response.text
        return i + 1, responded  # a fresh thread: the i-th comment is event seq i + 1

    return post


def bare_poster(client: Any, port: int) -> Any:
    async def post(i: int) -> tuple[int, float]:
        response = await client.get(f"http://127.0.0.1:{port}/publish?seq={i + 1}")
        assert response.status_code == 200
        return i + 1, time.monotonic()

    return post


async def run(args: argparse.Namespace) -> list[Result]:
    import httpx

    results: list[Result] = []
    async with httpx.AsyncClient(timeout=60) as client:
        for readers in args.readers:
            for transport in args.transport:
                async with fresh_database(args.database_url) as db_url:
                    uri = await make_post(db_url, "bench")
                    with kibitz_processes(db_url, args.redis_url) as [(proc, port, live)]:
                        target = (
                            "127.0.0.1",
                            live if transport == "direct" else port,
                            f"/ws?uri={uri}",
                        )
                        result = await measure(
                            f"kibitz/{transport}",
                            [target],
                            readers,
                            args.comments,
                            kibitz_poster(client, f"http://127.0.0.1:{port}", uri),
                            [proc.pid],
                            args.client_procs,
                        )
                print(result.line(), flush=True)
                results.append(result)
            if args.skip_bare:
                continue
            port = free_port()
            bare = mp.Process(target=bare_server, args=(port,), daemon=True)
            bare.start()
            try:
                wait_http(f"http://127.0.0.1:{port}/publish?seq=0")
                result = await measure(
                    "bare",
                    [("127.0.0.1", port, "/")],
                    readers,
                    args.comments,
                    bare_poster(client, port),
                    [bare.pid],
                    args.client_procs,
                )
            finally:
                bare.terminate()
                bare.join(10)
            print(result.line(), flush=True)
            results.append(result)
            for r in results[-len(args.transport) - 1 : -1]:
                ratio = Result.pct(r.from_response, 0.99) / max(
                    1e-9, Result.pct(result.from_response, 0.99)
                )
                print(f"{'':>10} {r.name} p99 / bare p99 = {ratio:.2f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--comments", type=int, default=20)
    parser.add_argument("--transport", nargs="+", default=["direct"], choices=["direct", "asgi"])
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--skip-bare", action="store_true", help="measure kibitz only")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "KIBITZ_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("KIBITZ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    limit = raise_fd_limit()
    print(
        f"open files limit {limit}; {os.cpu_count()} CPUs; {args.comments} comments each",
        flush=True,
    )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
