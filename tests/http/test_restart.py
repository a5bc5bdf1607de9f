"""Graceful restarts of a real ``kibitz serve`` process (SIGTERM).

In-flight requests finish, readers on both transports are closed with 1012 ("service
restart") so they resume elsewhere, and the process exits within the stated bound.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path

import httpx
from websockets.exceptions import ConnectionClosed

from server.app import CLOSE_TIMEOUT, SHUTDOWN_GRACE
from tests.helpers.live import COMMENT, reader
from tests.helpers.servers import free_port, start_process, stop_process

BOUND = SHUTDOWN_GRACE + CLOSE_TIMEOUT  # docs/deploy.md: a stop never takes longer


def env_for(tmp_path: Path) -> dict[str, str]:
    return {
        "KIBITZ_DATABASE_URL": f"sqlite:///{tmp_path / 'kibitz.db'}",
        "KIBITZ_DATA_DIR": str(tmp_path),
        "KIBITZ_SECRET_KEY": "restart-test",
        "KIBITZ_MODERATION": "none",
        "KIBITZ_POST_RATE": "off",
        "KIBITZ_MIN_FILL_SECONDS": "0",
        "KIBITZ_DEMO": "",
    }


async def test_sigterm_finishes_requests_closes_readers_with_1012_and_exits(
    tmp_path: Path,
) -> None:
    """A POST whose body is still arriving at SIGTERM is answered 201; readers get 1012."""
    live_port = free_port()
    process = start_process(env_for(tmp_path), "--live-port", str(live_port))
    try:
        async with httpx.AsyncClient(base_url=process.url) as client:
            first = await client.post(
                "/api/comments",
                json={**COMMENT, "uri": "/elsewhere/page"},
                headers={"Origin": process.url},
            )
        assert first.status_code == 201, first.text
        uri = "/elsewhere/page"
        async with (
            reader(f"ws://127.0.0.1:{live_port}", uri) as direct,
            reader(process.url.replace("http://", "ws://"), uri) as asgi,
        ):
            body = json.dumps({**COMMENT, "uri": uri, "text": "in flight"}).encode()
            slow = socket.create_connection(("127.0.0.1", process.port))
            slow.sendall(
                f"POST /api/comments HTTP/1.1\r\nHost: 127.0.0.1:{process.port}\r\n".encode()
                + f"Origin: {process.url}\r\n".encode()
                + b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            await asyncio.sleep(0.3)
            stopped_at = time.monotonic()
            process.proc.send_signal(signal.SIGTERM)
            for r in (asgi, direct):
                try:
                    while True:
                        await asyncio.wait_for(r.ws.recv(), 5)
                except ConnectionClosed as closed:
                    assert closed.rcvd is not None and closed.rcvd.code == 1012
            await asyncio.sleep(0.3)
            slow.sendall(body[10:])
            slow.settimeout(10)
            answer = slow.recv(65536).decode()
            slow.close()
            assert answer.startswith("HTTP/1.1 201"), answer
            process.proc.wait(BOUND + 5)
            assert time.monotonic() - stopped_at < BOUND
            # uvicorn re-raises the signal once it has shut down cleanly.
            assert process.proc.returncode in (0, -signal.SIGTERM)
    finally:
        log = stop_process(process)
    assert "Application shutdown complete" in log
    again = start_process(env_for(tmp_path))
    try:
        async with httpx.AsyncClient(base_url=again.url) as client:
            thread = (await client.get("/api/comments", params={"uri": uri})).json()
        assert [c["html"] for c in thread["comments"]] == [
            "<p>Hello live world</p>",
            "<p>in flight</p>",
        ]
    finally:
        stop_process(again)
