"""Real ``kibitz serve`` processes sharing one PostgreSQL and one Redis."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.helpers.live import COMMENT, reader
from tests.helpers.posts import add_post
from tests.helpers.servers import ROOT, Process, free_port, start_process, stop_process

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def env_for(pg_url: str, redis_url: str, tmp_path: Path, prefix: str) -> dict[str, str]:
    return {
        "KIBITZ_DATABASE_URL": pg_url,
        "KIBITZ_REDIS_URL": redis_url,
        "KIBITZ_REDIS_PREFIX": prefix,
        "KIBITZ_DATA_DIR": str(tmp_path),
        "KIBITZ_SECRET_KEY": "processes-test",
        "KIBITZ_MODERATION": "none",
        "KIBITZ_POST_RATE": "off",
        "KIBITZ_MIN_FILL_SECONDS": "0",
    }


def live_base(process: Process, live_port: int) -> str:
    return f"ws://127.0.0.1:{live_port}"


async def test_two_independent_servers_share_events_and_presence(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """A reader on one process sees a comment posted to the other; presence counts both."""
    env = env_for(pg_url, redis_url, tmp_path, f"kibitz-proc-{uuid.uuid4().hex[:8]}")
    ports = [free_port(), free_port()]
    live_ports = [free_port(), free_port()]
    procs = [start_process(env, "--live-port", str(live_ports[i]), port=ports[i]) for i in range(2)]
    try:
        uri = (await add_post(pg_url, "twins")).uri
        async with httpx.AsyncClient() as client:
            config = (await client.get(procs[0].url + "/api/config")).json()
        assert config["live_url"].endswith(f":{live_ports[0]}/ws")
        async with reader(live_base(procs[0], live_ports[0]), uri) as first:
            await first.silent(0.5)
            async with reader(live_base(procs[1], live_ports[1]), uri) as second:
                assert second.hello["online"] == 2
                await first.presence_reaches(2)
                async with httpx.AsyncClient() as client:
                    created = await client.post(
                        procs[1].url + "/api/comments", json={"uri": uri, **COMMENT}
                    )
                assert created.status_code == 201
                for r in (first, second):
                    event = await r.next()
                    assert event["comment"]["id"] == created.json()["comment"]["id"]
    finally:
        for proc in procs:
            stop_process(proc)


async def test_workers_share_the_live_port(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    """kibitz serve --workers 2: readers spread over both workers all get every comment."""
    env = env_for(pg_url, redis_url, tmp_path, f"kibitz-workers-{uuid.uuid4().hex[:8]}")
    live_port = free_port()
    proc = start_process(env, "--workers", "2", "--live-port", str(live_port))
    try:
        uri = (await add_post(pg_url, "workers")).uri
        base = live_base(proc, live_port)
        async with (
            reader(base, uri) as a,
            reader(base, uri) as b,
            reader(base, uri) as c,
            reader(proc.url.replace("http", "ws"), uri) as d,
        ):
            async with httpx.AsyncClient() as client:
                created = await client.post(
                    proc.url + "/api/comments", json={"uri": uri, **COMMENT}
                )
            assert created.status_code == 201
            for r in (a, b, c, d):
                assert (await r.next())["comment"]["id"] == created.json()["comment"]["id"]
    finally:
        stop_process(proc)


def test_several_workers_without_postgres_and_redis_are_refused(tmp_path: Path) -> None:
    """No silent split-brain: --workers 2 on SQLite without Redis exits 2 with a reason."""
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--workers", "2", "--port", str(free_port())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "KIBITZ_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "KIBITZ_REDIS_URL" in result.stderr and "postgresql" in result.stderr
