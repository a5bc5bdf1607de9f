"""Degrading clearly: PostgreSQL down, Redis hung. Private servers the tests may kill and stop.

While PostgreSQL is down writes answer 503 with Retry-After (the form keeps what was typed),
thread reads answer from the last copy this process read, /healthz says 503; when it is back,
kibitz recovers without a restart. A hung Redis (SIGSTOP) never stalls a request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.services import PostgresServer, RedisServer
from tests.helpers.live import reader, ws_base
from tests.helpers.posts import add_post
from tests.helpers.servers import make_settings, serve
from tests.helpers.view import form_values, parse

PERSON = {"author": "Ada", "email": "ada@example.org", "text": "Hello there"}

COMMENT = {"uri": "/posts/hello", "author": "Ada", "email": "ada@example.org", "text": "Hi"}


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.init()
        server.start()
        server.create_database()
        yield server
    finally:
        server.close()


async def test_postgres_down_writes_503_reads_cached_form_kept_then_recovers(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """kill -9 of PostgreSQL: 503 + Retry-After, stale reads, the form kept; then all works."""
    async with serve(make_settings(postgres.url, tmp_path)) as server:
        await add_post(server)
        async with server.client() as client:
            assert (await client.post("/api/comments", json=COMMENT)).status_code == 201
            before = await client.get("/api/comments", params={"uri": "/posts/hello"})
            page = await client.get("/posts/hello")
            values = {**form_values(parse(page.text)), **PERSON, "text": "Typed while down"}
            postgres.kill()

            down = await client.post("/api/comments", json={**COMMENT, "text": "Lost?"})
            assert down.status_code == 503, down.text
            assert int(down.headers["retry-after"]) > 0
            assert "error" in down.json()
            form = await client.post("/posts/hello/comments", data=values)
            assert form.status_code == 503
            assert int(form.headers["retry-after"]) > 0
            kept = form_values(parse(form.text))
            assert kept["text"] == "Typed while down"
            assert (kept["author"], kept["email"]) == (PERSON["author"], PERSON["email"])
            assert kept["form_token"] == values["form_token"]
            assert "not reachable" in form.text
            cached = await client.get("/api/comments", params={"uri": "/posts/hello"})
            assert cached.status_code == 200
            assert cached.json() == before.json()
            assert cached.headers["kibitz-stale"]
            health = await client.get("/healthz")
            assert health.status_code == 503

            postgres.start()
            started, answer = time.monotonic(), None
            while time.monotonic() - started < 30:
                answer = await client.post("/posts/hello/comments", data=kept)
                if answer.status_code != 503:
                    break
                await asyncio.sleep(0.2)
            assert answer is not None and answer.status_code == 303
            # Sent again (the form the person still has): the same 303, nothing new.
            again = await client.post("/posts/hello/comments", data=kept)
            assert again.headers["location"] == answer.headers["location"]
            assert (await client.get("/healthz")).status_code == 200
            thread = (await client.get("/api/comments", params={"uri": "/posts/hello"})).json()
            assert [c["html"] for c in thread["comments"]] == [
                "<p>Hi</p>",
                "<p>Typed while down</p>",
            ]


async def test_hung_redis_never_stalls_a_request(database_url: str, tmp_path: Path) -> None:
    """Redis stopped with SIGSTOP: posts, reads and /healthz still answer within ~1 s."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        settings = make_settings(
            database_url, tmp_path, KIBITZ_REDIS_URL=redis.url, KIBITZ_POST_RATE="100/minute"
        )
        async with serve(settings) as server:
            deadline = time.monotonic() + 10
            while not server.state.live.broker.connected:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await add_post(server)
            async with (
                server.client() as client,
                reader(ws_base(server, "asgi"), "/posts/hello") as live,
            ):
                assert (await client.post("/api/comments", json=COMMENT)).status_code == 201
                assert (await live.next())["seq"] == 1
                redis.pause()
                slowest = 0.0
                for n in range(5):
                    started = time.monotonic()
                    posted = await client.post(
                        "/api/comments", json={**COMMENT, "text": f"during the hang {n}"}
                    )
                    read = await client.get("/api/comments", params={"uri": "/posts/hello"})
                    health = await client.get("/healthz")
                    slowest = max(slowest, time.monotonic() - started)
                    assert (posted.status_code, read.status_code, health.status_code) == (
                        201,
                        200,
                        200,
                    )
                assert slowest < 1.5, f"a request waited {slowest:.2f} s for a hung Redis"
                # This process's own reader gets every comment, in order, Redis or not.
                events = await live.events(5, timeout=10)
                assert [e["seq"] for e in events] == [2, 3, 4, 5, 6]
                redis.resume()
                deadline = time.monotonic() + 30
                while (await client.get("/healthz")).json().get("redis") != "ok":
                    assert time.monotonic() < deadline, "never reconnected after SIGCONT"
                    await asyncio.sleep(0.1)
                after = await client.post("/api/comments", json={**COMMENT, "text": "resumed"})
                assert after.status_code == 201
                assert (await live.next())["seq"] == 7
                await live.silent(0.5)
    finally:
        redis.close()
