"""Readers and writers for live-channel tests: real websockets clients, real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from server.auth.credentials import hash_password, new_api_token
from tests.helpers.mail import until
from tests.helpers.servers import Server, free_port, make_settings, serve

COMMENT = {"author": "Ada", "email": "ada@example.org", "text": "Hello live world"}


def ws_base(server: Server, transport: str) -> str:
    """Where a reader connects: the site's own /ws, or the live port's."""
    if transport == "direct":
        return f"ws://127.0.0.1:{server.settings.live_port}"
    return server.url.replace("http://", "ws://")


class Reader:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.hello: dict[str, Any] = {}
        self.presence: list[int] = []

    async def next(self, timeout: float = 5) -> dict[str, Any]:
        """The next message that is not a presence update."""
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if message["type"] == "presence":
                self.presence.append(message["online"])
                continue
            return message  # type: ignore[no-any-return]

    async def events(self, count: int, timeout: float = 5) -> list[dict[str, Any]]:
        return [await self.next(timeout) for _ in range(count)]

    async def silent(self, wait: float = 0.5) -> None:
        """Nothing but presence arrives within ``wait`` seconds."""
        try:
            message = await self.next(wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message {message}")

    async def presence_reaches(self, online: int, timeout: float = 5) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.presence or self.presence[-1] != online:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"presence {self.presence}, expected {online}")
            try:
                message = json.loads(await asyncio.wait_for(self.ws.recv(), remaining))
            except TimeoutError:
                continue
            if message["type"] == "presence":
                self.presence.append(message["online"])


@asynccontextmanager
async def reader(
    base: str, uri: str, since: int | None = None, *, origin: str | None = None, **kwargs: Any
) -> AsyncIterator[Reader]:
    url = f"{base}/ws?uri={uri}" + (f"&since={since}" if since is not None else "")
    async with connect(
        url,
        compression=None,
        origin=origin,  # type: ignore[arg-type]
        open_timeout=10,
        **kwargs,
    ) as ws:
        r = Reader(ws)
        r.hello = await r.next()
        assert r.hello["type"] == "hello", r.hello
        yield r


@asynccontextmanager
async def slow_reader(base: str, uri: str) -> AsyncIterator[ClientConnection]:
    """A reader whose socket takes almost nothing in: a tiny receive buffer, never read."""
    host, port = base.removeprefix("ws://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    async with connect(
        f"{base}/ws?uri={uri}",
        sock=sock,
        compression=None,
        max_queue=1,
        ping_interval=None,
        open_timeout=10,
    ) as ws:
        yield ws


async def post(server: Server, uri: str, **fields: Any) -> dict[str, Any]:
    async with server.client() as client:
        response = await client.post("/api/comments", json={"uri": uri, **COMMENT, **fields})
    assert response.status_code == 201, response.text
    return response.json()["comment"]  # type: ignore[no-any-return]


async def staff_token(server: Server, name: str = "mod") -> str:
    member = await server.state.staff.add(name, "moderator", hash_password("long-password"))
    token = new_api_token()
    await server.state.staff.add_token(member.id, token)
    return token


async def until_readers(server: Server, uri: str, count: int, timeout: float = 10) -> None:
    """Wait until the hub has registered ``count`` readers of ``uri`` (instead of sleeping)."""
    await until(lambda: server.state.live.hub.local_counts().get(uri, 0) >= count, timeout)


async def until_others_see(server: Server, uri: str, online: int, timeout: float = 10) -> None:
    """Wait until the broker tells ``server`` that other processes have ``online`` readers."""
    broker = server.state.live.broker

    async def seen() -> bool:
        return await broker.presence(uri, 0, write=False) >= online

    await until(seen, timeout)


async def until_disconnected(server: Server, timeout: float = 10) -> None:
    """Wait until ``server``'s broker has noticed that Redis is gone."""
    await until(lambda: not server.state.live.broker.connected, timeout)


@asynccontextmanager
async def pair(pg_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[tuple[Server, Server]]:
    """Two kibitz servers on one database and one Redis prefix, each with a live port."""
    prefix = f"kibitz-live-{uuid.uuid4().hex[:8]}"
    common = {"KIBITZ_REDIS_URL": redis_url, "KIBITZ_REDIS_PREFIX": prefix}
    a = make_settings(pg_url, tmp_path / "a", KIBITZ_LIVE_PORT=str(free_port()), **common)
    b = make_settings(pg_url, tmp_path / "b", KIBITZ_LIVE_PORT=str(free_port()), **common)
    async with serve(a) as one, serve(b) as two:
        await wait_connected(one)
        await wait_connected(two)
        yield one, two


async def wait_connected(server: Server, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not server.state.live.broker.connected:
        assert time.monotonic() < deadline, "the broker never connected"
        await asyncio.sleep(0.05)
