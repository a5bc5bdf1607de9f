"""Closing threads and pinning comments, through a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from db.exports import ExportReader
from db.models import now
from tests.helpers.live import post, reader, staff_token, ws_base
from tests.helpers.posts import add_post
from tests.helpers.servers import Server, make_settings, serve
from tests.helpers.threads import seed

FORM = {"author": "Ada", "email": "ada@example.org", "text": "half-typed thoughts"}


async def test_staff_close_and_reopen_a_thread(server: Server) -> None:
    """A closed thread refuses API and form comments with 403 and says so; reopening undoes it."""
    uri = (await add_post(server, "hello")).uri
    await post(server, uri)
    auth = {"Authorization": f"Bearer {await staff_token(server)}"}
    async with server.client() as client:
        refused = await client.post("/api/threads/close", params={"uri": uri})
        closed = await client.post("/api/threads/close", params={"uri": uri}, headers=auth)
        api = await client.post(
            "/api/comments", json={"uri": uri, **FORM}, headers={"Origin": server.url}
        )
        form = await client.post(f"{uri}/comments", data=FORM)
        page = await client.get(uri)
        read = (await client.get("/api/comments", params={"uri": uri})).json()
        paged = (await client.get("/api/comments", params={"uri": uri, "limit": "5"})).json()
        opened = await client.post("/api/threads/open", params={"uri": uri}, headers=auth)
        again = await client.post("/api/comments", json={"uri": uri, **FORM})
        entries = await server.state.audit.newest()
    assert refused.status_code == 401
    assert closed.status_code == 200 and closed.json() == {"uri": uri, "closed": True}
    assert api.status_code == 403 and "closed" in api.json()["error"]
    assert form.status_code == 403
    assert "half-typed thoughts" in form.text and "Comments are closed" in form.text
    assert "Comments are closed" in page.text and "data-comment-form" not in page.text
    assert read["closed"] is True and paged["closed"] is True
    assert opened.status_code == 200 and again.status_code == 201
    assert {"close", "open"} <= {e.action for e in entries}


async def test_closing_is_a_stored_live_event(server: Server) -> None:
    """Readers get thread.closed and thread.opened live, and again when they resume."""
    uri = (await add_post(server, "hello")).uri
    await post(server, uri)
    auth = {"Authorization": f"Bearer {await staff_token(server)}"}
    base = ws_base(server, "asgi")
    async with reader(base, uri) as live:
        async with server.client() as client:
            await client.post("/api/threads/close", params={"uri": uri}, headers=auth)
            await client.post("/api/threads/close", params={"uri": uri}, headers=auth)  # no-op
            await client.post("/api/threads/open", params={"uri": uri}, headers=auth)
        assert await live.events(2) == [
            {"type": "thread.closed", "seq": 2},
            {"type": "thread.opened", "seq": 3},
        ]
        await live.silent(0.3)
    async with reader(base, uri, since=1) as resumed:
        assert [e["type"] for e in await resumed.events(2)] == ["thread.closed", "thread.opened"]


async def test_close_after_days_closes_old_threads(database_url: str, tmp_path: Path) -> None:
    """KIBITZ_CLOSE_AFTER_DAYS closes old threads, but not one staff reopened or a young one."""
    settings = make_settings(database_url, tmp_path, KIBITZ_CLOSE_AFTER_DAYS="3")
    async with serve(settings) as server:
        await server.state.posts.add(
            slug="old",
            title="Old",
            author="A",
            body_html="<p>x</p>",
            published=now() - timedelta(days=10),
        )
        await add_post(server, "young")
        await seed(server, 1, uri="/elsewhere/page")  # first comment a day ago: young
        started = now()
        assert await server.state.threads.close_due() == 1
        closed = await _decisions(server)
        async with server.client() as client:
            refused = await client.post("/api/comments", json={"uri": "/posts/old", **FORM})
            young = await client.post("/api/comments", json={"uri": "/posts/young", **FORM})
            auth = {"Authorization": f"Bearer {await staff_token(server)}"}
            await client.post("/api/threads/open", params={"uri": "/posts/old"}, headers=auth)
            assert await server.state.threads.close_due() == 0
            reopened = await client.post("/api/comments", json={"uri": "/posts/old", **FORM})
        opened = await _decisions(server)
    assert refused.status_code == 403
    assert young.status_code == 201 and reopened.status_code == 201
    # When each decision was taken is kept (the export carries it: docs/export.md).
    assert closed["/posts/old"][0] is True and started <= closed["/posts/old"][1] <= now()
    assert closed["/posts/young"] == (None, None) == opened["/posts/young"]
    assert opened["/posts/old"][0] is False and opened["/posts/old"][1] > closed["/posts/old"][1]


async def _decisions(server: Server) -> dict[str, tuple[bool | None, datetime | None]]:
    threads = await ExportReader(server.state.db).threads()
    return {t.uri: (t.closed, t.closed_at) for t in threads}


async def test_pins_are_staff_only_and_top_level(server: Server) -> None:
    """Staff pin an approved top-level comment (readers get comment.updated); not a reply."""
    uri = (await add_post(server, "hello")).uri
    first = await post(server, uri)
    reply = await post(server, uri, parent=first["id"])
    auth = {"Authorization": f"Bearer {await staff_token(server)}"}
    base = ws_base(server, "asgi")
    async with reader(base, uri) as live, server.client() as client:
        anonymous = await client.post(f"/api/comments/{first['id']}/pin")
        of_reply = await client.post(f"/api/comments/{reply['id']}/pin", headers=auth)
        missing = await client.post("/api/comments/999999/pin", headers=auth)
        pinned = await client.post(f"/api/comments/{first['id']}/pin", headers=auth)
        event = await live.next()
        unpinned = await client.post(f"/api/comments/{first['id']}/unpin", headers=auth)
        second = await live.next()
        entries = await server.state.audit.newest()
    assert anonymous.status_code == 401
    assert of_reply.status_code == 422 and of_reply.json()["error"]
    assert missing.status_code == 404 and missing.json()["error"]
    assert pinned.status_code == 200 and pinned.json()["comment"]["pinned"] is True
    assert event["type"] == "comment.updated" and event["comment"]["pinned"] is True
    assert "email" not in event["comment"]
    assert unpinned.json()["comment"]["pinned"] is False and second["comment"]["pinned"] is False
    assert {"pin", "unpin"} <= {e.action for e in entries}


async def test_unknown_thread_or_missing_uri(server: Server) -> None:
    """Closing needs ?uri= of an existing thread: 400 without it, 404 for an unknown one."""
    auth = {"Authorization": f"Bearer {await staff_token(server)}"}
    async with server.client() as client:
        no_uri = await client.post("/api/threads/close", headers=auth)
        unknown = await client.post("/api/threads/close", params={"uri": "/x"}, headers=auth)
    assert no_uri.status_code == 400 and no_uri.json()["fields"]["uri"]
    assert unknown.status_code == 404 and unknown.json()["error"]


async def test_cached_post_page_follows_votes_pins_and_closing(server: Server) -> None:
    """A visitor's cached post page shows new vote counts, a pin and the closed notice at once."""
    uri = (await add_post(server, "hello")).uri
    first = await post(server, uri)
    second = await post(server, uri)
    auth = {"Authorization": f"Bearer {await staff_token(server)}"}
    async with server.client() as client:
        before = (await client.get(uri)).text
        voter = (await client.post("/api/voters")).json()["voter"]
        voted = await client.post(
            f"/api/comments/{second['id']}/vote", json={"value": 1, "voter": voter}
        )
        after_vote = (await client.get(uri)).text
        pinned = await client.post(f"/api/comments/{second['id']}/pin", headers=auth)
        after_pin = (await client.get(uri)).text
        newest = (await client.get(uri, params={"sort": "newest"})).text
        await client.post("/api/threads/close", params={"uri": uri}, headers=auth)
        after_close = (await client.get(uri)).text
    assert voted.status_code == 200
    assert 'data-up="0"' in before and f'data-votes="{second["id"]}" data-up="1"' in after_vote
    assert pinned.status_code == 200, pinned.text
    assert after_pin.index(f'id="comment-{second["id"]}"') < after_pin.index(
        f'id="comment-{first["id"]}"'
    )
    assert '<option value="newest" selected>' in newest
    assert "data-comment-form" in after_pin and "data-comment-form" not in after_close
