"""Idempotent submissions (CONTRACT.md): the Idempotency-Key header and the form's one-use token.

Every test runs a real server on SQLite and on PostgreSQL and counts what readers can see.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.helpers.posts import add_post
from tests.helpers.servers import Server, make_settings, serve
from tests.helpers.view import form_values, parse

PERSON = {"author": "Ada", "email": "ada@example.org", "text": "Hello there"}

COMMENT = {"uri": "/posts/hello", "author": "Ada", "email": "ada@example.org", "text": "Once"}


async def visible_ids(client: httpx.AsyncClient, uri: str = "/posts/hello") -> list[int]:
    thread = (await client.get("/api/comments", params={"uri": uri})).json()
    return [c["id"] for c in thread["comments"]]


async def test_same_key_and_body_answers_the_first_answer_and_stores_once(server: Server) -> None:
    """A retry with the same key gets 201 with the same comment id and a working edit token."""
    await add_post(server)
    async with server.client() as client:
        headers = {"Idempotency-Key": "retry-1"}
        first = await client.post("/api/comments", json=COMMENT, headers=headers)
        # The same body with its keys in another order is the same body.
        again = await client.post(
            "/api/comments", json=dict(reversed(list(COMMENT.items()))), headers=headers
        )
        assert first.status_code == again.status_code == 201
        assert again.json()["comment"] == first.json()["comment"]
        assert again.headers["idempotency-replayed"] == "true"
        assert await visible_ids(client) == [first.json()["comment"]["id"]]
        edited = await client.patch(
            f"/api/comments/{first.json()['comment']['id']}",
            json={"text": "Edited"},
            headers={"Authorization": f"Bearer {again.json()['edit_token']}"},
        )
        assert edited.status_code == 200


async def test_same_key_with_another_body_is_409(server: Server) -> None:
    """Reusing a key for a different comment is refused with 409 and stores nothing."""
    await add_post(server)
    async with server.client() as client:
        headers = {"Idempotency-Key": "k-409"}
        first = await client.post("/api/comments", json=COMMENT, headers=headers)
        other = await client.post(
            "/api/comments", json={**COMMENT, "text": "Something else"}, headers=headers
        )
        assert first.status_code == 201
        assert other.status_code == 409
        assert "Idempotency-Key" in other.json()["fields"]
        assert await visible_ids(client) == [first.json()["comment"]["id"]]


async def test_malformed_keys_are_400_and_store_nothing(server: Server) -> None:
    """Empty, too long or non-ASCII keys answer 400 with the error shape."""
    await add_post(server)
    async with server.client() as client:
        for key in ["", "x" * 201, "clé".encode(), "tab\there"]:
            answer = await client.post(
                "/api/comments", json=COMMENT, headers={"Idempotency-Key": key}
            )
            assert answer.status_code == 400, key
            assert "Idempotency-Key" in answer.json()["fields"]
        longest = await client.post(
            "/api/comments", json=COMMENT, headers={"Idempotency-Key": "~" * 200}
        )
        assert longest.status_code == 201
        assert len(await visible_ids(client)) == 1


async def test_a_refused_attempt_does_not_use_up_its_key(server: Server) -> None:
    """422 first (text missing), then the corrected comment under the same key is stored."""
    await add_post(server)
    async with server.client() as client:
        headers = {"Idempotency-Key": "fix-and-retry"}
        bad = await client.post("/api/comments", json={**COMMENT, "text": ""}, headers=headers)
        good = await client.post("/api/comments", json=COMMENT, headers=headers)
        assert (bad.status_code, good.status_code) == (422, 201)
        assert await visible_ids(client) == [good.json()["comment"]["id"]]


async def test_concurrent_duplicates_create_one_comment(server: Server) -> None:
    """Twelve requests with one key at once: all 201 with one id, one comment stored."""
    await add_post(server)
    async with server.client() as client:
        headers = {"Idempotency-Key": "burst"}
        answers = await asyncio.gather(
            *(client.post("/api/comments", json=COMMENT, headers=headers) for _ in range(12))
        )
        assert {a.status_code for a in answers} == {201}
        ids = {a.json()["comment"]["id"] for a in answers}
        assert len(ids) == 1
        assert await visible_ids(client) == list(ids)


async def test_held_comment_replays_as_held_and_stays_hidden(
    database_url: str, tmp_path: Path
) -> None:
    """With moderation on, the retry answers the same pending comment; readers see none."""
    settings = make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")
    async with serve(settings) as server:
        await add_post(server)
        async with server.client() as client:
            headers = {"Idempotency-Key": "held"}
            first = await client.post("/api/comments", json=COMMENT, headers=headers)
            again = await client.post("/api/comments", json=COMMENT, headers=headers)
            assert first.status_code == again.status_code == 201
            assert again.json()["comment"]["id"] == first.json()["comment"]["id"]
            assert again.json()["comment"]["status"] == "pending"
            assert await visible_ids(client) == []
            pending = await server.state.moderation.search("pending")
            assert [c.id for c, _ in pending] == [first.json()["comment"]["id"]]


async def test_form_sent_twice_creates_one_comment_and_answers_the_same_303(
    server: Server,
) -> None:
    """A double click or a resubmission after a cut connection: one comment, the same 303."""
    await add_post(server)
    async with server.client() as client:
        page = await client.get("/posts/hello")
        values = {**form_values(parse(page.text)), **PERSON}
        assert values["form_token"]
        first = await client.post("/posts/hello/comments", data=values)
        both = await asyncio.gather(
            *(client.post("/posts/hello/comments", data=values) for _ in range(3))
        )
        assert first.status_code == 303
        assert {(r.status_code, r.headers["location"]) for r in both} == {
            (303, first.headers["location"])
        }
        assert len(await visible_ids(client)) == 1
        # A fresh page gives a fresh token: the same words again are a new comment.
        fresh = {**form_values(parse((await client.get("/posts/hello")).text)), **PERSON}
        assert fresh["form_token"] != values["form_token"]
        second = await client.post("/posts/hello/comments", data=fresh)
        assert second.status_code == 303
        assert second.headers["location"] != first.headers["location"]
        assert len(await visible_ids(client)) == 2


async def test_form_token_reused_for_other_words_keeps_them_and_explains(server: Server) -> None:
    """Back button, edit, send: nothing is lost; the page keeps the text and says why (409)."""
    await add_post(server)
    async with server.client() as client:
        page = await client.get("/posts/hello")
        values = {**form_values(parse(page.text)), **PERSON}
        assert (await client.post("/posts/hello/comments", data=values)).status_code == 303
        changed = await client.post(
            "/posts/hello/comments", data={**values, "text": "Second thoughts"}
        )
        assert changed.status_code == 409
        root = parse(changed.text)
        kept = form_values(root)
        assert kept["text"] == "Second thoughts"
        assert kept["form_token"] != values["form_token"]
        assert "already sent" in changed.text
        resent = await client.post("/posts/hello/comments", data=kept)
        assert resent.status_code == 303
        assert len(await visible_ids(client)) == 2


@pytest.mark.postgres
async def test_concurrent_duplicates_on_two_servers_create_one_comment(
    pg_url: str, tmp_path: Path
) -> None:
    """The same key sent to two servers on one PostgreSQL at once: one comment, one id."""
    async with (
        serve(make_settings(pg_url, tmp_path / "a")) as one,
        serve(make_settings(pg_url, tmp_path / "b")) as two,
    ):
        await add_post(one)
        async with one.client() as a, two.client() as b:
            for round_ in range(5):
                headers = {"Idempotency-Key": f"split-{round_}"}
                body = {**COMMENT, "text": f"Round {round_}"}
                answers = await asyncio.gather(
                    *(c.post("/api/comments", json=body, headers=headers) for c in [a, b] * 4)
                )
                assert {r.status_code for r in answers} == {201}
                assert len({r.json()["comment"]["id"] for r in answers}) == 1
            assert len(await visible_ids(a)) == 5


async def test_embedding_sites_may_send_the_key_and_read_the_replay(
    database_url: str, tmp_path: Path
) -> None:
    """CORS: the preflight allows Idempotency-Key; the replay header is exposed to scripts."""
    site = "https://blog.example.org"
    settings = make_settings(database_url, tmp_path, KIBITZ_ALLOWED_ORIGINS=site)
    async with serve(settings) as server, server.client() as client:
        preflight = await client.options(
            "/api/comments",
            headers={
                "Origin": site,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, idempotency-key",
            },
        )
        assert preflight.status_code == 204
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert "idempotency-key" in allowed
        headers = {"Origin": site, "Idempotency-Key": "cross-site"}
        body = {**COMMENT, "uri": "/elsewhere"}
        first = await client.post("/api/comments", json=body, headers=headers)
        again = await client.post("/api/comments", json=body, headers=headers)
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json()["comment"]["id"] == first.json()["comment"]["id"]
        exposed = again.headers["access-control-expose-headers"].lower()
        assert "idempotency-replayed" in exposed
