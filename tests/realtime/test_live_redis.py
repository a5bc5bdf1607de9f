"""The live channel across processes through real Redis and PostgreSQL.

Two servers in one test share a database and a Redis prefix, each with a broker of its own,
exactly as two hosts would. The restart test runs a private redis-server on a free port and
stops it mid-test; the shared Redis is never touched.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.live import (
    pair,
    post,
    reader,
    until_disconnected,
    until_others_see,
    wait_connected,
    ws_base,
)
from tests.helpers.posts import add_post
from tests.helpers.servers import IN_CI, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_a_reader_on_one_server_sees_a_comment_posted_to_the_other(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Redis carries events between processes; each reader gets it once."""
    async with pair(pg_url, redis_url, tmp_path) as (one, two):
        uri = (await add_post(one, "shared")).uri
        async with (
            reader(ws_base(one, "direct"), uri) as on_one,
            reader(ws_base(two, "asgi"), uri) as on_two,
        ):
            created = await post(two, uri)
            for r in (on_one, on_two):
                event = await r.next()
                assert event["type"] == "comment.created"
                assert event["comment"]["id"] == created["id"]
                await r.silent(0.3)


async def test_presence_counts_across_processes(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """A reader on each server: both are told two are reading, then one when one leaves."""
    async with pair(pg_url, redis_url, tmp_path) as (one, two):
        uri = (await add_post(one, "crowd")).uri
        async with reader(ws_base(one, "direct"), uri) as first:
            assert first.hello["online"] == 1
            await until_others_see(two, uri, 1)  # the first server has recorded its count
            async with reader(ws_base(two, "direct"), uri) as second:
                assert second.hello["online"] == 2
                await first.presence_reaches(2)
            await first.presence_reaches(1)


@contextlib.contextmanager
def private_redis(tmp_path: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    server = shutil.which("redis-server")
    if server is None:
        if IN_CI:
            pytest.fail("redis-server is missing: apt-get install -y redis-server")
        pytest.skip("redis-server is not installed")
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "private redis-server did not start"
                time.sleep(0.05)
        client.close()
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


async def test_redis_stopped_and_started_loses_nothing(pg_url: str, tmp_path: Path) -> None:
    """With Redis down comments are accepted, /healthz stays 200; after it returns, all arrive."""
    port = free_port()
    with private_redis(tmp_path, port) as redis_proc:
        async with pair(pg_url, f"redis://127.0.0.1:{port}/0", tmp_path) as (one, two):
            uri = (await add_post(one, "blink")).uri
            async with (
                reader(ws_base(one, "direct"), uri) as far,
                reader(ws_base(two, "asgi"), uri) as near,
            ):
                redis_proc.terminate()
                redis_proc.wait(10)
                await until_disconnected(one)
                await until_disconnected(two)
                posted = [await post(two, uri, text=f"while Redis is down {i}") for i in range(3)]
                async with httpx.AsyncClient(base_url=one.url) as client:
                    health = await client.get("/healthz")
                assert health.status_code == 200
                assert health.json()["redis"].startswith("unavailable")
                # The posting process's own readers are served at once, Redis or not.
                assert [e["comment"]["id"] for e in await near.events(3)] == [
                    c["id"] for c in posted
                ]
                await far.silent(0.5)
                with private_redis(tmp_path, port):
                    await wait_connected(one)
                    await wait_connected(two)
                    caught_up = await far.events(3, timeout=15)
                    assert [e["seq"] for e in caught_up] == [1, 2, 3]
                    assert [e["comment"]["id"] for e in caught_up] == [c["id"] for c in posted]
                    after = await post(one, uri)
                    for r in (far, near):
                        event = await r.next()
                        assert (event["seq"], event["comment"]["id"]) == (4, after["id"])
                        await r.silent(0.3)
                    async with httpx.AsyncClient(base_url=one.url) as client:
                        assert (await client.get("/healthz")).json()["redis"] == "ok"
