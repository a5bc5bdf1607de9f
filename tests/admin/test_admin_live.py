"""The live moderation queue: staff sessions on /ws/moderation, and the queue page in a real
browser adding and removing rows live, and catching up after a reconnect."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from db.comments import CommentStore, NewComment
from db.database import connect as connect_db
from tests.helpers.browsers import async_browser
from tests.helpers.posts import add_post
from tests.helpers.servers import free_port, make_settings, serve
from tests.helpers.staff import PASSWORD, add_staff, sign_in

COMMENT = {"uri": "/posts/hello", "author": "Ada", "email": "ada@example.org"}


@pytest.mark.parametrize("transport", ["asgi", "direct"])
async def test_session_cookie_opens_the_moderation_channel(
    database_url: str, tmp_path: Path, transport: str
) -> None:
    """The admin's session cookie opens /ws/moderation (site port and live port alike) from
    the site's own pages; another origin or no cookie is refused; held comments arrive."""
    port, live_port = free_port(), free_port()
    settings = make_settings(
        database_url,
        tmp_path,
        KIBITZ_MODERATION="all",
        KIBITZ_PUBLIC_URL=f"http://127.0.0.1:{port}",
        KIBITZ_LIVE_PORT=str(live_port),
    )
    async with serve(settings, port=port) as server:
        await add_post(server)
        await add_staff(server, "mod")
        async with server.client() as client:
            await sign_in(client, "mod")
            cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        base = (
            f"ws://127.0.0.1:{live_port}"
            if transport == "direct"
            else server.url.replace("http://", "ws://")
        )
        url = base + "/ws/moderation"
        with pytest.raises(InvalidStatus):
            async with connect(url, origin=server.url):  # type: ignore[arg-type]
                pass
        with pytest.raises(InvalidStatus):
            async with connect(
                url,
                origin="https://evil.example",  # type: ignore[arg-type]
                additional_headers={"Cookie": cookie},
            ):
                pass
        async with connect(
            url,
            origin=server.url,  # type: ignore[arg-type]
            additional_headers={"Cookie": cookie},
        ) as staff:
            async with server.client() as reader:
                held = await reader.post("/api/comments", json={**COMMENT, "text": "live one"})
            message = json.loads(await asyncio.wait_for(staff.recv(), 5))
    assert message["type"] == "comment.pending"
    assert message["comment"]["id"] == held.json()["comment"]["id"]
    assert message["comment"]["email"] == "ada@example.org"


@pytest.mark.browser
async def test_queue_page_is_live_and_reloads_after_a_reconnect(tmp_path: Path) -> None:
    """In chromium: a held comment appears in the open queue within a second, disappears when
    another moderator acts on it, and after the server restarts the queue reloads to show
    what changed while it was disconnected."""
    db_url = f"sqlite:///{tmp_path / 'k.db'}"
    port = free_port()
    settings = make_settings(
        db_url, tmp_path, KIBITZ_MODERATION="all", KIBITZ_PUBLIC_URL=f"http://127.0.0.1:{port}"
    )
    async with async_browser() as browser:
        page = await browser.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if "Refused" in m.text else None)
        async with serve(settings, port=port) as server:
            await add_post(server)
            await add_staff(server, "mod")
            await add_staff(server, "other")
            await page.goto(server.url + "/admin/login")
            await page.fill("#login-name", "mod")
            await page.fill("#login-password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(server.url + "/admin/queue")
            await page.locator("html[data-live=open]").wait_for(state="attached")
            async with server.client() as reader:
                first = (
                    await reader.post(
                        "/api/comments", json={**COMMENT, "text": "arrives <b>live</b>"}
                    )
                ).json()["comment"]["id"]
                second = (
                    await reader.post("/api/comments", json={**COMMENT, "text": "stays for now"})
                ).json()["comment"]["id"]
            await page.wait_for_selector(f"#mod-{first}", timeout=3000)
            await page.wait_for_selector(f"#mod-{second}", timeout=3000)
            row = page.locator(f"#mod-{first}")
            assert await row.locator("[data-field=email]").text_content() == "ada@example.org"
            assert await row.locator("[data-field=html] b").text_content() == "live"
            assert "<b>live</b>" in await row.locator("[data-field=text]").text_content()
            async with server.client() as other:
                csrf = await sign_in(other, "other")
                await other.post(f"/api/comments/{first}/approve", headers={"X-CSRF-Token": csrf})
            await page.wait_for_selector(f"#mod-{first}", state="detached", timeout=3000)
        # The server is down; meanwhile one comment is held and another one moderated.
        db = await connect_db(db_url)
        try:
            store = CommentStore(db)
            third, _ = await store.add(
                "/posts/hello",
                NewComment(
                    author="Cy",
                    email="cy@example.org",
                    website=None,
                    text="while away",
                    html="<p>while away</p>",
                    status="pending",
                    reason="test",
                ),
                create_thread=False,
            )
            await store.change(second, status="spam")
        finally:
            await db.close()
        await page.locator("html[data-live=closed]").wait_for(state="attached")
        async with serve(settings, port=port):
            await page.wait_for_selector(f"#mod-{third.id}", timeout=15000)
            await page.wait_for_selector(f"#mod-{second}", state="detached", timeout=5000)
            assert await page.locator(".mod-item").count() == 1
    assert problems == []


@pytest.mark.postgres
@pytest.mark.redis
async def test_live_queue_and_sessions_across_two_processes(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Signed in on one process, a moderator's queue socket on the other process gets the
    comment held on the first within a second, and its removal when the first approves it."""
    import re
    import time
    import uuid

    import httpx

    from db.posts import PostStore
    from db.staff import StaffStore
    from server.auth.credentials import hash_password
    from tests.helpers.servers import start_process, stop_process

    db = await connect_db(pg_url)
    try:
        await PostStore(db).add(slug="hello", title="Hello", author="Admin", body_html="<p>x</p>")
        await StaffStore(db).add("mod", "moderator", hash_password(PASSWORD))
    finally:
        await db.close()
    env = {
        "KIBITZ_DATABASE_URL": pg_url,
        "KIBITZ_REDIS_URL": redis_url,
        "KIBITZ_REDIS_PREFIX": f"kibitz-adm-{uuid.uuid4().hex[:8]}",
        "KIBITZ_DATA_DIR": str(tmp_path),
        "KIBITZ_SECRET_KEY": "admin-processes",
        "KIBITZ_MODERATION": "all",
        "KIBITZ_POST_RATE": "off",
    }
    first, second = start_process(env), start_process(env)
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
            await client.post("/admin/login", data={"name": "mod", "password": PASSWORD})
            page = await client.get("/admin/queue")
            csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
            async with connect(
                second.url.replace("http://", "ws://") + "/ws/moderation",
                origin=second.url,  # type: ignore[arg-type]
                additional_headers={"Cookie": cookie},
            ) as queue:
                started = time.monotonic()
                async with httpx.AsyncClient(base_url=first.url, timeout=30) as reader:
                    held = (
                        await reader.post(
                            "/api/comments", json={**COMMENT, "text": "held on the first"}
                        )
                    ).json()["comment"]
                pending = json.loads(await asyncio.wait_for(queue.recv(), 5))
                took = time.monotonic() - started
                approved = await client.post(
                    f"/api/comments/{held['id']}/approve", headers={"X-CSRF-Token": csrf}
                )
                moderated = json.loads(await asyncio.wait_for(queue.recv(), 5))
    finally:
        stop_process(first)
        stop_process(second)
    assert pending["type"] == "comment.pending" and pending["comment"]["id"] == held["id"]
    assert took < 1.0, took
    assert approved.status_code == 200
    assert moderated == {
        "type": "comment.moderated",
        "id": held["id"],
        "status": "approved",
        "by": "mod",
    }


async def test_approving_in_the_admin_reaches_readers_live(
    database_url: str, tmp_path: Path
) -> None:
    """A reader on the thread's live channel gets comment.approved the moment a moderator
    approves from the queue page (no-JS form); while it was held, the reader got nothing."""
    from tests.helpers.live import reader

    settings = make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")
    async with serve(settings) as server:
        await add_post(server)
        await add_staff(server, "mod")
        base = server.url.replace("http://", "ws://")
        async with reader(base, "/posts/hello") as r, server.client() as client:
            held = (
                await client.post("/api/comments", json={**COMMENT, "text": "wait for it"})
            ).json()["comment"]
            await r.silent(0.3)
            csrf = await sign_in(client, "mod")
            await client.post(
                "/admin/moderate",
                data={"csrf_token": csrf, "action": "approve", "ids": str(held["id"])},
            )
            event = await r.next()
    assert event["type"] == "comment.approved" and event["comment"]["id"] == held["id"]
    assert "email" not in event["comment"] and "address" not in event["comment"]
    assert event["comment"]["html"] == "<p>wait for it</p>"
