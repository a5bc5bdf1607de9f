"""Answers given again on PostgreSQL, trusted while no change notice arrives (db/notices.py).

Two servers on one database stand for two processes or hosts: what one commits must show in
the other's answers given again, though the other no longer reads to check them. The time
bound (``TRUST_FOR``) is raised to an hour here, so only a notice can end a kept answer.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from db import notices
from tests.helpers.live import post, staff_token
from tests.helpers.mail import until
from tests.helpers.posts import add_post
from tests.helpers.servers import Server, _admin, make_settings, serve

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _trust_for_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notices, "TRUST_FOR", 3600.0)


@asynccontextmanager
async def two_servers(pg_url: str, tmp_path: Path) -> AsyncIterator[tuple[Server, Server]]:
    async with serve(make_settings(pg_url, tmp_path / "a")) as a:
        async with serve(make_settings(pg_url, tmp_path / "b")) as b:
            for server in (a, b):
                await until(lambda s=server: _listening(s), message="the server never listened")
            yield a, b


async def _listening(server: Server) -> bool:
    async with server.client() as client:
        health = (await client.get("/healthz")).json()
    return bool(health["change_notices"] == "listening")


async def _texts(client: httpx.AsyncClient, uri: str) -> list[str]:
    answer = await client.get("/api/comments", params={"uri": uri})
    assert answer.status_code == 200, answer.text
    return [c["html"] for c in answer.json()["comments"]]


async def test_another_process_change_ends_answers_given_without_a_check(
    pg_url: str, tmp_path: Path
) -> None:
    """Once a read is kept, asking again costs no read of the database; a comment marked as
    spam through the other server, a post's new title and a new alias each end it."""
    async with two_servers(pg_url, tmp_path) as (a, b):
        uri = (await add_post(a, "notices", "Before")).uri
        await post(b, uri, text="First")
        second = await post(b, uri, text="Second")
        both = ["<p>First</p>", "<p>Second</p>"]
        async with a.client() as client:
            for _ in range(3):  # made, kept, given again
                assert await _texts(client, uri) == both
            checked, given = a.state.replays.checked, a.state.replays.given
            for _ in range(20):
                assert await _texts(client, uri) == both
            assert a.state.replays.given == given + 20
            assert a.state.replays.checked == checked, "a kept answer was checked by a read"

            staff = {"Authorization": f"Bearer {await staff_token(b)}"}
            async with b.client() as other:
                spam = await other.post(f"/api/comments/{second['id']}/spam", headers=staff)
            assert spam.status_code == 200, spam.text
            await until(
                lambda: _equals(_texts(client, uri), ["<p>First</p>"]),
                message="the comment marked as spam through the other server was still shown",
            )

            async def title() -> str:
                page = await client.get("/posts/notices")
                assert page.status_code == 200
                return page.text

            for _ in range(3):
                assert "Before" in await title()
            await _sql(pg_url, "UPDATE posts SET title = 'After' WHERE slug = 'notices'")
            await until(lambda: _contains(title(), "After"), message="the new title never showed")

            async def count_of_alias() -> int:
                answer = await client.get("/api/counts", params={"uri": "/old/notices"})
                return int(answer.json()["/old/notices"])

            for _ in range(3):
                assert await count_of_alias() == 0
            await _sql(
                pg_url,
                "INSERT INTO thread_aliases (uri, thread_id) "
                f"SELECT '/old/notices', id FROM threads WHERE uri = '{uri}'",
            )
            await until(lambda: _equals(count_of_alias(), 1), message="the new alias never counted")


async def test_another_process_new_comment_shows_within_the_trust_bound(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adding a comment sends no notice (it would serialise commits); a comment posted
    through the other server shows in answers given again within ``TRUST_FOR`` anyway."""
    monkeypatch.setattr(notices, "TRUST_FOR", 0.05)
    async with two_servers(pg_url, tmp_path) as (a, b):
        uri = (await add_post(a, "bound")).uri
        await post(b, uri, text="First")
        async with a.client() as client:
            for _ in range(3):
                assert await _texts(client, uri) == ["<p>First</p>"]
            await post(b, uri, text="Second")
            posted = time.monotonic()
            await until(
                lambda: _equals(_texts(client, uri), ["<p>First</p>", "<p>Second</p>"]),
                message="the other server's comment never showed",
            )
            assert time.monotonic() - posted < 2  # 50 ms, and a loaded machine's slack


async def test_without_notices_every_kept_answer_is_checked(pg_url: str, tmp_path: Path) -> None:
    """The listening connection is cut and cannot be made again for a while (the database
    refuses new connections; the pools keep theirs): meanwhile each answer given again is
    checked by a read, so the other server's comment shows in the very next answer. Once it
    listens again, on a new epoch, the checks stop."""
    name = urlsplit(pg_url).path.lstrip("/")
    async with two_servers(pg_url, tmp_path) as (a, b):
        uri = (await add_post(a, "cut")).uri
        await post(b, uri, text="First")
        listener = a.state.db._notices
        assert listener is not None
        epoch = listener.epoch
        async with a.client() as client:
            for _ in range(3):
                await _texts(client, uri)
            await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            try:
                await _admin(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE application_name = '{notices.APPLICATION_NAME}' AND datname = '{name}'"
                )
                await until(
                    lambda: _not(_listening(a)), 5, message="the cut connection still listens"
                )
                for _ in range(2):  # given again since the last move of this process's mark
                    await _texts(client, uri)
                await post(b, uri, text="Second")
                checked = a.state.replays.checked
                assert await _texts(client, uri) == ["<p>First</p>", "<p>Second</p>"]
                assert a.state.replays.checked > checked
            finally:
                await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await until(lambda: _listening(a), message="it never listened again")
            assert listener.epoch > epoch
            for _ in range(3):
                await _texts(client, uri)
            checked = a.state.replays.checked
            for _ in range(5):
                assert await _texts(client, uri) == ["<p>First</p>", "<p>Second</p>"]
            assert a.state.replays.checked == checked


async def _sql(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _page(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    assert page.status_code == 200
    return page.text


async def _equals(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def _contains(value: Awaitable[str], part: str) -> bool:
    return part in await value


async def _not(value: Awaitable[bool]) -> bool:
    return not await value


async def test_nothing_listens_while_no_kept_answer_is_asked_for(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that gives no answer again (it only takes comments, or nobody reads) closes
    its listening connection; the next answer given again opens it, checked meanwhile."""
    monkeypatch.setattr(notices, "IDLE_AFTER", 0.5)
    name = urlsplit(pg_url).path.lstrip("/")

    async def listeners() -> int:
        conn = await asyncpg.connect(pg_url)
        try:
            return int(
                await conn.fetchval(
                    "SELECT COUNT(*) FROM pg_stat_activity "
                    "WHERE application_name = $1 AND datname = $2",
                    notices.APPLICATION_NAME,
                    name,
                )
            )
        finally:
            await conn.close()

    async with two_servers(pg_url, tmp_path) as (a, b):
        uri = (await add_post(a, "idle")).uri
        await post(b, uri, text="First")
        await until(lambda: _equals(listeners(), 0), message="a listening connection stayed open")
        assert not await _listening(a)
        async with a.client() as client:
            for _ in range(3):  # the third is given again, checked: it starts the listening
                assert await _texts(client, uri) == ["<p>First</p>"]
            await until(lambda: _listening(a), message="a kept answer asked for did not start it")
            assert await listeners() == 1
            for _ in range(3):  # kept, then given again while it listens
                assert "Renamed" not in await _page(client, "/posts/idle")
            await _sql(pg_url, "UPDATE posts SET title = 'Renamed' WHERE slug = 'idle'")
            await until(
                lambda: _contains(_page(client, "/posts/idle"), "Renamed"),
                message="the new title never showed",
            )
