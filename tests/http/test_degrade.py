"""Degrading clearly: PostgreSQL down, Redis hung, SQLite's disk full or read-only. Private
servers and file systems the tests may kill, stop, fill and freeze.

While PostgreSQL is down writes answer 503 with Retry-After (the form keeps what was typed),
thread reads answer from the last copy this process read, /healthz says 503; when it is back,
kibitz recovers without a restart. A hung Redis (SIGSTOP) never stalls a request. The same
for the embedded default when its data directory is full or refuses writes: 503 with a
message that says so, reads straight from the database, /healthz 503 until a write works.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.services import PostgresServer, RedisServer, Volume
from tests.helpers.live import reader, ws_base
from tests.helpers.posts import add_post
from tests.helpers.servers import make_settings, serve
from tests.helpers.view import form_values, parse

PERSON = {"author": "Ada", "email": "ada@example.org", "text": "Hello there"}

COMMENT = {"uri": "/posts/hello", "author": "Ada", "email": "ada@example.org", "text": "Hi"}


def refused_form_kept(form: httpx.Response, sent: dict[str, str], message: str) -> dict[str, str]:
    """The form answered 503 with Retry-After and ``message``, everything typed and its token
    kept; returns the fields as the page gives them back."""
    assert form.status_code == 503
    assert int(form.headers["retry-after"]) > 0
    assert message in form.text
    kept = form_values(parse(form.text))
    assert kept["text"] == sent["text"]
    assert (kept["author"], kept["email"]) == (PERSON["author"], PERSON["email"])
    assert kept["form_token"] == sent["form_token"]
    return kept


async def form_posts_once_when_back(client: httpx.AsyncClient, kept: dict[str, str]) -> None:
    """The kept form, sent until the database takes it, is a 303; sent again (the form the
    person still has), the same 303 and nothing new."""
    started, answer = time.monotonic(), None
    while time.monotonic() - started < 30:
        answer = await client.post("/posts/hello/comments", data=kept)
        if answer.status_code != 503:
            break
        await asyncio.sleep(0.1)
    assert answer is not None and answer.status_code == 303, answer
    again = await client.post("/posts/hello/comments", data=kept)
    assert again.headers["location"] == answer.headers["location"]


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Volume]:
    """A 32 MiB ext4 file system of this test's own, for the data directory."""
    made = Volume(tmp_path, size_mb=32)
    try:
        made.mount()
        yield made
    finally:
        made.close()


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
            kept = refused_form_kept(form, values, "not reachable")
            cached = await client.get("/api/comments", params={"uri": "/posts/hello"})
            assert cached.status_code == 200
            assert cached.json() == before.json()
            assert cached.headers["kibitz-stale"]
            health = await client.get("/healthz")
            assert health.status_code == 503

            postgres.start()
            await form_posts_once_when_back(client, kept)
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


STORAGE_MESSAGE = "storage is full or read-only"


@pytest.mark.parametrize("fault", ["disk full", "read-only"])
async def test_sqlite_storage_refusing_writes_503_reads_answer_then_recovers(
    volume: Volume, fault: str
) -> None:
    """Full or read-only data directory: 503 + Retry-After + a clear message, the form kept,
    reads and live readers unaffected, /healthz 503; writes work again without a restart."""
    settings = make_settings(f"sqlite:///{volume.path / 'kibitz.db'}", volume.path)
    inject, heal = {
        "disk full": (volume.fill, volume.free),
        "read-only": (volume.refuse_writes, volume.take_writes),
    }[fault]
    async with serve(settings) as server:
        await add_post(server)
        async with (
            server.client() as client,
            reader(ws_base(server, "asgi"), "/posts/hello", since=0) as live,
        ):
            assert (await client.post("/api/comments", json=COMMENT)).status_code == 201
            page = await client.get("/posts/hello")
            values = {**form_values(parse(page.text)), **PERSON, "text": "Typed while refused"}
            inject()

            # A full disk refuses once the log must grow; until then writes still succeed.
            answered: list[int] = []
            deadline = time.monotonic() + 30
            down = None
            while time.monotonic() < deadline:
                n = len(answered)
                down = await client.post(
                    "/api/comments", json={**COMMENT, "text": f"#{n} " + "x" * 4000}
                )
                answered.append(down.status_code)
                if down.status_code != 201:
                    break
            assert down is not None and down.status_code == 503, (answered[-5:], down)
            assert set(answered) <= {201, 503}, answered
            assert int(down.headers["retry-after"]) > 0
            assert STORAGE_MESSAGE in down.json()["error"]
            form = await client.post("/posts/hello/comments", data=values)
            kept = refused_form_kept(form, values, STORAGE_MESSAGE)
            # Reads come straight from the database, which still reads fine.
            thread = await client.get("/api/comments", params={"uri": "/posts/hello"})
            assert thread.status_code == 200
            assert "kibitz-stale" not in thread.headers
            assert len(thread.json()["comments"]) == answered.count(201) + 1
            assert (await client.get("/posts/hello")).status_code == 200
            health = await client.get("/healthz")
            assert health.status_code == 503
            assert "storage refused" in health.json()["database"]

            heal()
            await form_posts_once_when_back(client, kept)
            assert (await client.get("/healthz")).status_code == 200
            thread = await client.get("/api/comments", params={"uri": "/posts/hello"})
            texts = [c["html"] for c in thread.json()["comments"]]
            assert texts.count("<p>Typed while refused</p>") == 1
            assert len(texts) == answered.count(201) + 2
            # The live reader got every comment once, in order, refusals or not.
            events = await live.events(len(texts), timeout=10)
            assert [e["seq"] for e in events] == list(range(1, len(texts) + 1))
            await live.silent(0.5)


async def test_health_recovers_without_writes_once_the_storage_takes_them(volume: Volume) -> None:
    """After a refused write /healthz tries a write itself: 200 again with no comment sent."""
    settings = make_settings(f"sqlite:///{volume.path / 'kibitz.db'}", volume.path)
    async with serve(settings) as server:
        await add_post(server)
        async with server.client() as client:
            assert (await client.get("/healthz")).status_code == 200
            volume.refuse_writes()
            assert (await client.post("/api/comments", json=COMMENT)).status_code == 503
            assert (await client.get("/healthz")).status_code == 503
            await asyncio.sleep(2.5)  # past the refusal's own answer: the check writes, and fails
            assert (await client.get("/healthz")).status_code == 503
            volume.take_writes()
            started = time.monotonic()
            while (health := await client.get("/healthz")).status_code != 200:
                assert health.status_code == 503
                assert time.monotonic() - started < 5, health.text
                await asyncio.sleep(0.1)
            assert (await client.post("/api/comments", json=COMMENT)).status_code == 201


async def test_postgres_read_only_answers_503_storage_then_recovers(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """PostgreSQL that will not write (default_transaction_read_only): 503, not 500."""
    async with serve(make_settings(postgres.url, tmp_path)) as server:
        await add_post(server)
        async with server.client() as client:
            postgres.psql("ALTER SYSTEM SET default_transaction_read_only = on")
            postgres.psql("SELECT pg_reload_conf()")
            deadline = time.monotonic() + 10
            refused = await client.post("/api/comments", json=COMMENT)
            while refused.status_code == 201 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)  # until every pooled connection has the setting
                refused = await client.post("/api/comments", json=COMMENT)
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["retry-after"]) > 0
            assert STORAGE_MESSAGE in refused.json()["error"]
            postgres.psql("ALTER SYSTEM RESET default_transaction_read_only")
            postgres.psql("SELECT pg_reload_conf()")
            deadline = time.monotonic() + 10
            while (answer := await client.post("/api/comments", json=COMMENT)).status_code != 201:
                assert time.monotonic() < deadline, answer.text
                await asyncio.sleep(0.1)
