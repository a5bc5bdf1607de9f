"""Spam and abuse defences that need no third party, through real servers."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from db.comments import NewComment
from db.models import Status, now
from server.discussion.actions import (
    HELD_DUPLICATE,
    HELD_HONEYPOT,
    HELD_IMPERSONATION,
    HELD_NO_FORM_TOKEN,
    HELD_TOO_FAST,
)
from tests.helpers.posts import add_post
from tests.helpers.servers import make_settings, serve, start_process, stop_process
from tests.helpers.staff import add_staff, sign_in
from tests.helpers.stored import with_status

COMMENT = {"uri": "/posts/hello", "author": "Ada", "email": "ada@example.org", "text": "Hello"}
_FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')


async def _form(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    page = await client.get("/posts/hello")
    token = _FORM_TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
    data = {
        "author": "Ada",
        "email": "ada@example.org",
        "text": "Hello",
        "form_token": token,
        **fields,
    }
    return await client.post("/posts/hello/comments", data=data)


async def _only_comment(server):  # type: ignore[no-untyped-def]
    found = await with_status(server.state.db, Status.PENDING)
    assert len(found) == 1
    return found[0]


async def test_honeypot_holds_with_its_reason(database_url: str, tmp_path: Path) -> None:
    """A filled-in honeypot field is kept as pending with the reason, never dropped."""
    async with serve(make_settings(database_url, tmp_path)) as server:
        await add_post(server)
        async with server.client() as client:
            response = await _form(client, subject="http://spam.example")
            assert response.status_code == 303 and "notice=held" in response.headers["location"]
            held = await _only_comment(server)
            thread = await client.get("/api/comments", params={"uri": "/posts/hello"})
    assert held.reason == HELD_HONEYPOT and thread.json()["comments"] == []


async def test_minimum_fill_time_and_missing_form_token(database_url: str, tmp_path: Path) -> None:
    """A form sent faster than the minimum fill time, or without the page's token, is held;
    one sent after it is published."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_MIN_FILL_SECONDS="1")) as server:
        await add_post(server)
        async with server.client() as client:
            await _form(client)
            too_fast = await _only_comment(server)
            await client.post(
                "/posts/hello/comments",
                data={"author": "Bob", "email": "b@example.org", "text": "no token"},
            )
            page = await client.get("/posts/hello")
            token = _FORM_TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
            await asyncio.sleep(1.1)  # the fill time under test (the form token has no clock)
            slow = await client.post(
                "/posts/hello/comments",
                data={
                    "author": "Cy",
                    "email": "c@example.org",
                    "text": "typed slowly",
                    "form_token": token,
                },
            )
            reasons = {
                c.author: c.reason for c in await with_status(server.state.db, Status.PENDING)
            }
    assert too_fast.reason == HELD_TOO_FAST
    assert reasons == {"Ada": HELD_TOO_FAST, "Bob": HELD_NO_FORM_TOKEN}
    assert slow.status_code == 303 and "#comment-" in slow.headers["location"]


async def test_rate_limit_api_429_with_retry_after(database_url: str, tmp_path: Path) -> None:
    """The third comment within a minute from one address is 429 with Retry-After."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_POST_RATE="2/minute")) as server:
        await add_post(server)
        async with server.client() as client:
            statuses = [
                (await client.post("/api/comments", json={**COMMENT, "text": f"number {i}"}))
                for i in range(3)
            ]
    assert [r.status_code for r in statuses] == [201, 201, 429]
    assert 1 <= int(statuses[2].headers["retry-after"]) <= 60
    assert "error" in statuses[2].json()


async def test_rate_limited_form_keeps_everything_typed(database_url: str, tmp_path: Path) -> None:
    """The form's 429 re-renders the page with every field as the reader typed it."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_POST_RATE="1/minute")) as server:
        await add_post(server)
        async with server.client() as client:
            first = await _form(client, text="first")
            second = await _form(
                client,
                author="Ada Lovelace",
                email="ada@lovelace.example",
                website="https://lovelace.example/",
                text="my <b>second</b> try",
            )
    assert first.status_code == 303
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
    for typed in (
        'value="Ada Lovelace"',
        'value="ada@lovelace.example"',
        'value="https://lovelace.example/"',
        "my &lt;b&gt;second&lt;/b&gt; try",
    ):
        assert typed in second.text


async def test_spoofed_forwarded_for_does_not_evade_the_limit(
    database_url: str, tmp_path: Path
) -> None:
    """Without a trusted proxy, X-Forwarded-For is ignored: a new value per request changes
    nothing, and the stored address is the real peer."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_POST_RATE="2/minute")) as server:
        await add_post(server)
        async with server.client() as client:
            statuses = [
                (
                    await client.post(
                        "/api/comments",
                        headers={"X-Forwarded-For": f"203.0.113.{i}"},
                        json={**COMMENT, "text": f"n{i}"},
                    )
                ).status_code
                for i in range(3)
            ]
            stored = await with_status(server.state.db, Status.APPROVED)
    assert statuses == [201, 201, 429]
    assert {c.address for c in stored} == {"127.0.0.1"}


async def test_forwarded_for_believed_from_a_trusted_proxy(
    database_url: str, tmp_path: Path
) -> None:
    """Behind a trusted proxy the client is the right-most untrusted X-Forwarded-For hop;
    what the client itself put in front of it is ignored."""
    async with serve(
        make_settings(database_url, tmp_path, KIBITZ_TRUSTED_PROXIES="127.0.0.1")
    ) as server:
        await add_post(server)
        async with server.client() as client:
            await client.post(
                "/api/comments", json=COMMENT, headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.7"}
            )
            await client.post(
                "/api/comments",
                json={**COMMENT, "text": "other"},
                headers={"X-Forwarded-For": "198.51.100.8"},
            )
            stored = await with_status(server.state.db, Status.APPROVED)
    assert sorted(c.address for c in stored) == ["198.51.100.7", "198.51.100.8"]


@pytest.mark.redis
@pytest.mark.postgres
async def test_rate_limit_holds_across_two_processes(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """With Redis, limits are shared: of comments posted to two processes in turn the fourth
    is refused, and so is the sixth login attempt on one account."""
    env = {
        "KIBITZ_DATABASE_URL": pg_url,
        "KIBITZ_REDIS_URL": redis_url,
        "KIBITZ_DATA_DIR": str(tmp_path),
        "KIBITZ_SECRET_KEY": "two-process-secret",
        "KIBITZ_POST_RATE": "3/minute",
        "KIBITZ_MODERATION": "none",
        "KIBITZ_REDIS_PREFIX": f"kibitz-test-{uuid.uuid4().hex}",
    }
    first = start_process(env)
    second = start_process(env)
    try:
        statuses = []
        for i, process in enumerate((first, second, first, second)):
            async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:
                response = await client.post(
                    "/api/comments",
                    headers={"Origin": process.url},
                    json={**COMMENT, "uri": "/elsewhere/page", "text": f"comment {i}"},
                )
                statuses.append(response.status_code)
        logins = []
        for i in range(6):
            process = (first, second)[i % 2]
            async with httpx.AsyncClient(base_url=process.url, timeout=30) as client:
                response = await client.post(
                    "/admin/login", data={"name": "someone", "password": "wrong"}
                )
                logins.append(response.status_code)
    finally:
        stop_process(first)
        stop_process(second)
    assert statuses == [201, 201, 201, 429]
    assert logins == [401] * 5 + [429]


async def test_duplicate_comment_is_held(database_url: str, tmp_path: Path) -> None:
    """The same text again on the same thread within minutes is held with its reason; on
    another thread it is not a duplicate."""
    async with serve(
        make_settings(database_url, tmp_path, KIBITZ_DUPLICATE_WINDOW="600")
    ) as server:
        await add_post(server)
        await add_post(server, "other")
        async with server.client() as client:
            first = await client.post("/api/comments", json=COMMENT)
            again = await client.post("/api/comments", json={**COMMENT, "text": "  Hello \n"})
            elsewhere = await client.post("/api/comments", json={**COMMENT, "uri": "/posts/other"})
            held = await server.state.comments.get(again.json()["comment"]["id"])
    assert first.json()["comment"]["status"] == "approved"
    assert again.json()["comment"]["status"] == "pending" and held.reason == HELD_DUPLICATE
    assert elsewhere.json()["comment"]["status"] == "approved"


async def test_impersonating_staff_is_held_and_never_badged(
    database_url: str, tmp_path: Path
) -> None:
    """A commenter using a staff member's name or e-mail (any case) is held; approved later
    it still has no staff badge."""
    async with serve(make_settings(database_url, tmp_path)) as server:
        await add_post(server)
        await add_staff(server, "Editor", email="editor@blog.example")
        async with server.client() as client:
            by_name = await client.post("/api/comments", json={**COMMENT, "author": " editor "})
            by_email = await client.post(
                "/api/comments",
                json={**COMMENT, "author": "Someone", "email": "EDITOR@blog.example", "text": "x"},
            )
            ids = [by_name.json()["comment"]["id"], by_email.json()["comment"]["id"]]
            reasons = [(await server.state.comments.get(i)).reason for i in ids]
            csrf = await sign_in(client, "Editor")
            for i in ids:
                await client.post(f"/api/comments/{i}/approve", headers={"X-CSRF-Token": csrf})
        async with server.client() as reader:
            thread = (await reader.get("/api/comments", params={"uri": "/posts/hello"})).json()
            page = (await reader.get("/posts/hello")).text
    assert [by_name.json()["comment"]["status"], by_email.json()["comment"]["status"]] == [
        "pending",
        "pending",
    ]
    assert reasons == [HELD_IMPERSONATION, HELD_IMPERSONATION]
    assert [c["staff"] for c in thread["comments"]] == [False, False]
    assert "comment--staff" not in page and "comment__badge" not in page


async def test_addresses_are_erased_after_retention(database_url: str, tmp_path: Path) -> None:
    """Housekeeping erases client addresses older than KIBITZ_ADDRESS_RETENTION_DAYS and keeps
    newer ones."""
    settings = make_settings(database_url, tmp_path, KIBITZ_ADDRESS_RETENTION_DAYS="30")
    async with serve(settings) as server:
        await add_post(server)
        old, _ = await server.state.comments.add(
            "/posts/hello",
            NewComment(
                author="Old",
                email="old@example.org",
                website=None,
                text="old",
                html="<p>old</p>",
                status="approved",
                address="203.0.113.9",
                created=now() - timedelta(days=31),
            ),
            create_thread=False,
        )
        new, _ = await server.state.comments.add(
            "/posts/hello",
            NewComment(
                author="New",
                email="new@example.org",
                website=None,
                text="new",
                html="<p>new</p>",
                status="approved",
                address="203.0.113.10",
                created=now() - timedelta(days=29),
            ),
            create_thread=False,
        )
    async with serve(settings) as server:  # housekeeping runs at start, then hourly
        for _ in range(100):
            if (await server.state.comments.get(old.id)).address is None:
                break
            await asyncio.sleep(0.05)
        assert (await server.state.comments.get(old.id)).address is None
        assert (await server.state.comments.get(new.id)).address == "203.0.113.10"


async def test_disguised_impersonation_is_held(database_url: str, tmp_path: Path) -> None:
    """Digits for letters, dots, accents, a Cyrillic letter or a +tag on the staff address do
    not get past the check; an ordinary name does."""
    async with serve(make_settings(database_url, tmp_path)) as server:
        await add_post(server)
        await add_staff(server, "Editor", email="editor@blog.example")
        async with server.client() as client:
            statuses = {}
            for author, email in (
                ("Ed1t0r", "a@example.org"),
                ("E.D.I.T.O.R", "b@example.org"),
                ("\u0415ditor", "c@example.org"),
                ("ÉDITOR", "d@example.org"),
                ("Someone", "Editor+news@Blog.example"),
                ("Edith", "edith@example.org"),
            ):
                created = await client.post(
                    "/api/comments",
                    json={**COMMENT, "author": author, "email": email, "text": f"by {author}"},
                )
                statuses[author] = created.json()["comment"]["status"]
    assert statuses == {
        "Ed1t0r": "pending",
        "E.D.I.T.O.R": "pending",
        "\u0415ditor": "pending",
        "ÉDITOR": "pending",
        "Someone": "pending",
        "Edith": "approved",
    }
