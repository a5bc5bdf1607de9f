"""Moderation cannot be walked around: edits are moderated like new comments, open queues
follow every change of a held comment, approvals name the version they approve, and a
commenter's thread title waits for their comment's approval."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from server.auth.credentials import new_api_token
from tests.helpers.browsers import async_browser
from tests.helpers.posts import add_post
from tests.helpers.servers import Server, free_port, make_settings, serve
from tests.helpers.staff import PASSWORD, add_staff, sign_in

ADA = {"uri": "/posts/hello", "author": "Ada", "email": "ada@example.org"}
LINKS = " ".join(f"https://spam{n}.example/" for n in range(21))


async def staff_token(server: Server, name: str = "mod") -> str:
    await add_staff(server, name)
    member = (await server.state.staff.by_name(name))[0]
    token = new_api_token()
    await server.state.staff.add_token(member.id, token)
    return token


async def post(client: httpx.AsyncClient, **fields: Any) -> tuple[dict[str, Any], str]:
    answer = await client.post("/api/comments", json={**ADA, **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()["comment"], answer.json()["edit_token"]


async def edit(client: httpx.AsyncClient, cid: int, token: str, text: str) -> httpx.Response:
    return await client.patch(
        f"/api/comments/{cid}", json={"text": text}, headers={"Authorization": f"Bearer {token}"}
    )


async def visible_ids(client: httpx.AsyncClient) -> list[int]:
    thread = (await client.get("/api/comments", params={"uri": "/posts/hello"})).json()
    return [c["id"] for c in thread["comments"] if c["status"] == "approved"]


async def test_an_approved_comment_edited_into_spam_is_held_again(
    database_url: str, tmp_path: Path
) -> None:
    """Under first-time: a harmless comment, once approved, edited to carry 21 links is held
    again (readers lose it, the queue has it with the new text) until staff approve that."""
    settings = make_settings(database_url, tmp_path, KIBITZ_MODERATION="first-time")
    async with serve(settings) as server, server.client() as client:
        await add_post(server)
        auth = {"Authorization": f"Bearer {await staff_token(server)}"}
        comment, token = await post(client, text="Nice post.")
        assert comment["status"] == "pending"
        assert (
            await client.post(f"/api/comments/{comment['id']}/approve", headers=auth)
        ).is_success
        assert await visible_ids(client) == [comment["id"]]

        # A harmless edit of an approved comment stays approved (the same decision).
        other, other_token = await post(client, text="Second thought.")
        assert other["status"] == "approved"  # Ada has an approved comment now
        again = await edit(client, other["id"], other_token, "Second thought, edited.")
        assert again.json()["comment"]["status"] == "approved"

        edited = await edit(client, comment["id"], token, "Buy now " + LINKS)
        assert edited.status_code == 200
        assert edited.json()["comment"]["status"] == "pending"
        assert await visible_ids(client) == [other["id"]]
        queue = (await client.get("/api/moderation", headers=auth)).json()["comments"]
        assert [(c["id"], c["reason"], c["version"]) for c in queue] == [
            (comment["id"], "too many links", 2)
        ]
        assert "spam20.example" in queue[0]["text"]


async def test_open_queues_follow_edits_and_withdrawals_of_held_comments(
    database_url: str, tmp_path: Path
) -> None:
    """An open /ws/moderation gets comment.pending again with the new text and version when a
    held comment is edited, and comment.moderated (deleted) when its author withdraws it."""
    settings = make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")
    async with serve(settings) as server, server.client() as client:
        await add_post(server)
        token = await staff_token(server)
        async with connect(
            server.url.replace("http://", "ws://") + "/ws/moderation",
            origin=server.url,  # type: ignore[arg-type]
            additional_headers={"Authorization": f"Bearer {token}"},
        ) as staff:
            comment, edit_token = await post(client, text="first words")
            first = json.loads(await asyncio.wait_for(staff.recv(), 5))
            assert (first["type"], first["comment"]["version"]) == ("comment.pending", 1)
            assert (await edit(client, comment["id"], edit_token, "second words")).is_success
            second = json.loads(await asyncio.wait_for(staff.recv(), 5))
            assert second["type"] == "comment.pending"
            assert second["comment"]["id"] == comment["id"]
            assert (second["comment"]["text"], second["comment"]["version"]) == ("second words", 2)
            gone = await client.delete(
                f"/api/comments/{comment['id']}", headers={"Authorization": f"Bearer {edit_token}"}
            )
            assert gone.status_code == 204
            third = json.loads(await asyncio.wait_for(staff.recv(), 5))
            assert third == {
                "type": "comment.moderated",
                "id": comment["id"],
                "status": "deleted",
                "by": "Ada (author)",
            }


async def test_an_approval_of_an_older_version_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    """Approving with the version the moderator saw: after an edit, the old version's
    approval is 409 (API and admin form alike) and changes nothing; the current one works."""
    settings = make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")
    async with serve(settings) as server, server.client() as client:
        await add_post(server)
        auth = {"Authorization": f"Bearer {await staff_token(server)}"}
        comment, edit_token = await post(client, text="harmless")
        cid = comment["id"]
        seen = (await client.get("/api/moderation", headers=auth)).json()["comments"][0]
        assert seen["version"] == 1
        assert (await edit(client, cid, edit_token, "not so harmless")).is_success

        stale = await client.post(f"/api/comments/{cid}/approve?version=1", headers=auth)
        assert stale.status_code == 409 and "edited" in stale.json()["error"]
        body = await client.post(f"/api/comments/{cid}/approve", json={"version": 1}, headers=auth)
        assert body.status_code == 409
        assert (await server.state.comments.get(cid)).status == "pending"
        bad = await client.post(f"/api/comments/{cid}/approve?version=x", headers=auth)
        assert bad.status_code == 422

        async with server.client() as admin:
            csrf = await sign_in(admin, "mod")
            page = await admin.get("/admin/queue")
            assert f'name="version-{cid}" value="2"' in page.text
            refused = await admin.post(
                "/admin/moderate",
                data={
                    "csrf_token": csrf,
                    "action": "approve",
                    "ids": str(cid),
                    f"version-{cid}": "1",
                },
            )
            assert refused.status_code == 303 and "notice=changed" in refused.headers["location"]
            assert (await server.state.comments.get(cid)).status == "pending"

        fresh = await client.post(f"/api/comments/{cid}/approve?version=2", headers=auth)
        assert fresh.status_code == 200
        assert await visible_ids(client) == [cid]


async def test_a_commenters_thread_title_waits_for_their_approval(
    database_url: str, tmp_path: Path
) -> None:
    """A title sent with the held first comment of a widget thread is not in the feed until
    that comment is approved; then it is."""
    settings = make_settings(
        database_url,
        tmp_path,
        KIBITZ_MODERATION="all",
        KIBITZ_ALLOWED_ORIGINS="https://blog.example",
        KIBITZ_PUBLIC_URL=f"http://127.0.0.1:{free_port()}",
    )
    async with serve(settings) as server, server.client() as client:
        auth = {"Authorization": f"Bearer {await staff_token(server)}"}
        uri = "/2026/title-test"
        created = await client.post(
            "/api/comments",
            json={**ADA, "uri": uri, "text": "hi", "title": "FREE PILLS spam.example"},
            headers={"Origin": "https://blog.example"},
        )
        assert created.status_code == 201
        cid = created.json()["comment"]["id"]

        async def feed() -> str:
            answer = await client.get("/feeds/thread.atom", params={"uri": uri})
            assert answer.status_code in (200, 404)
            return answer.text

        assert "FREE PILLS" not in await feed()
        assert (await client.post(f"/api/comments/{cid}/approve", headers=auth)).is_success
        assert "FREE PILLS" in await feed()


@pytest.mark.browser
async def test_the_queue_page_shows_edits_and_refuses_stale_approvals(tmp_path: Path) -> None:
    """In chromium: a held comment edited by its author changes in place in the open queue;
    an approve click on a row that is stale (edited after the row was drawn, the live
    update lost) is refused, the row shows the new text and the comment stays held; when the
    member's session ends elsewhere the queue leaves the screen for the login page."""
    port = free_port()
    settings = make_settings(
        f"sqlite:///{tmp_path / 'k.db'}",
        tmp_path,
        KIBITZ_MODERATION="all",
        KIBITZ_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    async with async_browser() as browser:
        page = await browser.new_page()
        async with serve(settings, port=port) as server, server.client() as client:
            await add_post(server)
            await add_staff(server, "mod")
            comment, token = await post(client, text="first words")
            cid = comment["id"]
            await page.goto(server.url + "/admin/login")
            await page.fill("#login-name", "mod")
            await page.fill("#login-password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(server.url + "/admin/queue")
            await page.locator("html[data-live=open]").wait_for(state="attached")
            row = page.locator(f"#mod-{cid}")
            assert await row.get_attribute("data-version") == "1"

            assert (await edit(client, cid, token, "second words")).is_success
            await page.wait_for_selector(f"#mod-{cid}[data-version='2']", timeout=3000)
            assert await row.locator("[data-field=text]").text_content() == "second words"

            # As if the live update had been lost: the row claims version 2 still.
            await server.state.comments.change(cid, text="third words", html="<p>third words</p>")
            await row.locator("[data-action=approve]").click()
            await page.wait_for_selector(f"#mod-{cid}[data-version='3']", timeout=5000)
            assert await row.locator("[data-field=text]").text_content() == "third words"
            assert (await server.state.comments.get(cid)).status == "pending"

            name = server.state.sessions.cookie
            cookies = await page.context.cookies()
            session = next(c["value"] for c in cookies if c["name"] == name)
            await server.state.sessions.store.close(session)  # no broker notice
            await page.wait_for_url(f"{server.url}/admin/login**", timeout=5000)
            assert await page.locator(".mod-item").count() == 0
