"""Delivery after faults: a committed event reaches every reader, whatever became of its publish.

The scenario of issue 13, with two real ``kibitz serve`` processes on one PostgreSQL and a
private redis-server that is killed and started again. Process B reaches Redis through a
proxy that stays closed after the restart, so B is still off Redis when A is already back:
a comment posted to B is delivered by B to its own readers, and A's reader must get it from
the periodic check against the database, within the bound docs/live.md states.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from db.comments import NewComment
from tests.faults.proxy import proxy
from tests.faults.services import RedisServer
from tests.helpers.live import COMMENT, reader, ws_base
from tests.helpers.posts import add_post
from tests.helpers.servers import Server, env_for, free_port, start_process, stop_process

BOUND = 3.5  # docs/live.md: at most ~3 s behind the database, plus slack for a busy machine


async def redis_state(url: str) -> str:
    async with httpx.AsyncClient() as client:
        return str((await client.get(url + "/healthz")).json().get("redis"))


async def wait_redis(url: str, want_ok: bool, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (await redis_state(url) == "ok") != want_ok:
        assert time.monotonic() < deadline, f"{url}: redis never became {want_ok}"
        await asyncio.sleep(0.05)


async def test_an_event_committed_but_never_published_still_reaches_readers(
    server: Server,
) -> None:
    """A commit whose publish never happened (a process killed in between) arrives in time."""
    uri = (await add_post(server, "unpublished")).uri
    async with reader(ws_base(server, "asgi"), uri) as quiet:
        new = NewComment(
            author="Bo", email="bo@example.org", website=None, text="x", html="x", status="approved"
        )
        comment, events = await server.state.comments.add(uri, new, create_thread=False)
        assert [e.seq for e in events] == [1]  # committed; no listener was told
        started = time.monotonic()
        event = await quiet.next(timeout=BOUND)
        assert (event["type"], event["seq"], event["comment"]["id"]) == (
            "comment.created",
            1,
            comment.id,
        )
        assert time.monotonic() - started < BOUND
        await quiet.silent(0.3)


@pytest.mark.postgres
async def test_a_process_back_on_redis_first_still_gets_what_a_late_one_committed(
    pg_url: str, tmp_path: Path
) -> None:
    """Redis restarts; A is back, B is not yet: B's comment reaches A's quiet reader in time."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        async with proxy(redis.port) as to_redis:
            prefix = f"kibitz-recovery-{uuid.uuid4().hex[:8]}"
            env_a = env_for(pg_url, redis.url, tmp_path, prefix)
            env_b = env_for(pg_url, f"redis://127.0.0.1:{to_redis.port}/0", tmp_path, prefix)
            live = [free_port(), free_port()]
            a = start_process(env_a, "--live-port", str(live[0]))
            b = start_process(env_b, "--live-port", str(live[1]))
            try:
                await wait_redis(a.url, True)
                await wait_redis(b.url, True)
                uri = (await add_post(pg_url, "quiet")).uri
                async with (
                    reader(f"ws://127.0.0.1:{live[0]}", uri) as on_a,
                    reader(f"ws://127.0.0.1:{live[1]}", uri) as on_b,
                ):
                    to_redis.block()
                    redis.kill()
                    await wait_redis(a.url, False)
                    await wait_redis(b.url, False)
                    redis.start()
                    await wait_redis(a.url, True)
                    assert await redis_state(b.url) != "ok"
                    async with httpx.AsyncClient() as client:
                        created = await client.post(
                            b.url + "/api/comments", json={"uri": uri, **COMMENT}
                        )
                    assert created.status_code == 201
                    posted_at = time.monotonic()
                    comment_id = created.json()["comment"]["id"]
                    mine = await on_b.next()
                    assert (mine["seq"], mine["comment"]["id"]) == (1, comment_id)
                    theirs = await on_a.next(timeout=BOUND)
                    assert (theirs["seq"], theirs["comment"]["id"]) == (1, comment_id)
                    assert time.monotonic() - posted_at < BOUND
                    # B comes back: what it could not publish is republished and dropped
                    # as already seen; the next comment reaches both readers once.
                    to_redis.unblock()
                    await wait_redis(b.url, True)
                    async with httpx.AsyncClient() as client:
                        after = await client.post(
                            a.url + "/api/comments",
                            json={"uri": uri, **COMMENT, "text": "Redis is back"},
                        )
                    for r in (on_a, on_b):
                        event = await r.next()
                        assert (event["seq"], event["comment"]["id"]) == (
                            2,
                            after.json()["comment"]["id"],
                        )
                        await r.silent(0.5)
            finally:
                stop_process(a)
                stop_process(b)
    finally:
        redis.close()
