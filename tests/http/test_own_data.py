"""A commenter's own data: the mailed link (real SMTP), download, erasure and its events."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from db.comments import NewComment
from server.discussion.markup import render_comment
from server.privacy.links import PrivacyLinks
from tests.helpers.live import reader, staff_token
from tests.helpers.mail import Mailbox, link_after, mail_settings, token_of, until
from tests.helpers.servers import Server, free_port, serve
from tests.helpers.staff import add_staff, sign_in

ADA = "ada@example.org"
ADDRESS = "203.0.113.51"
PRIVATE = (ADA, ADDRESS, "Ada Lovelace", "ada.example", "engine notes")


async def write(
    server: Server, uri: str, text: str, *, email: str = ADA, status: str = "approved", **kw: Any
) -> int:
    """A comment as submitted by someone, with their address recorded."""
    comment, events = await server.state.comments.add(
        uri,
        NewComment(
            author="Ada Lovelace" if email == ADA else "Bob",
            email=email,
            website="https://ada.example/" if email == ADA else None,
            text=text,
            html=render_comment(text),
            status=status,
            address=ADDRESS if email == ADA else "198.51.100.2",
            **kw,
        ),
        create_thread=True,
    )
    for listener in server.state.discussion.listeners.events:
        await listener(events)
    return int(comment.id)


async def thread(server: Server) -> dict[str, int]:
    """Ada's comments on two threads (one held, one with a reply by Bob), Bob's own one."""
    for slug in ("p", "q"):
        await server.state.posts.add(slug=slug, title=slug, author="A", body_html="<p>b</p>")
    ids = {"parent": await write(server, "/posts/p", "My engine notes, part one")}
    ids["reply"] = await write(
        server, "/posts/p", "Bob answers", email="bob@example.org", parent_id=ids["parent"]
    )
    ids["alone"] = await write(server, "/posts/p", "engine notes, part two")
    ids["held"] = await write(server, "/posts/p", "engine notes, held", status="pending")
    ids["other"] = await write(server, "/posts/q", "engine notes elsewhere")
    return ids


async def test_mailed_link_lists_downloads_and_erases_everything(
    database_url: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    """The request answers the same for any address, only an address with comments gets the
    mail; its link lists every comment in every status, downloads them, and erases them:
    readers get a placeholder and a deletion live, with nothing private in any frame, page,
    feed or audit entry."""
    await mailbox.start()
    port = free_port()
    async with serve(mail_settings(database_url, tmp_path, mailbox, port), port) as server:
        ids = await thread(server)
        async with server.client() as client:
            known = await client.post("/privacy", data={"email": ADA})
            unknown = await client.post("/privacy", data={"email": "nobody@example.org"})
            assert known.status_code == unknown.status_code == 200
            assert known.text == unknown.text
            await until(lambda: bool(mailbox.inbox.to(ADA)))
            await asyncio.sleep(0.5)
            assert mailbox.inbox.to("nobody@example.org") == []
            [message] = mailbox.inbox.to(ADA)
            link = link_after(message, "It works for 24 hours:")
            assert link.startswith(f"http://127.0.0.1:{port}/privacy/mine?t=")

            page = await client.get(link.replace(f"http://127.0.0.1:{port}", ""))
            assert page.status_code == 200
            assert page.headers["cache-control"] == "no-store"
            for text in ("part one", "part two", "held", "elsewhere"):
                assert text in page.text
            assert "Bob answers" not in page.text
            token = token_of(link)
            downloaded = await client.post("/privacy/mine/download", data={"t": token})
            assert "attachment" in downloaded.headers["content-disposition"]
            own = downloaded.json()
            assert {c["id"] for c in own["comments"]} == {
                ids["parent"],
                ids["alone"],
                ids["held"],
                ids["other"],
            }
            assert all(c["email"] == ADA and c["address"] == ADDRESS for c in own["comments"])

            async with reader(server.url.replace("http://", "ws://"), "/posts/p") as live:
                erased = await client.post("/privacy/mine/erase", data={"t": token})
                assert erased.status_code == 200 and "4 comments were erased" in erased.text
                frames = await live.events(2)
            assert {(f["type"], f.get("id") or f["comment"]["id"]) for f in frames} == {
                ("comment.updated", ids["parent"]),
                ("comment.deleted", ids["alone"]),
            }
            placeholder = next(f["comment"] for f in frames if f["type"] == "comment.updated")
            assert placeholder["author"] == "" and placeholder["html"] == ""
            assert placeholder["status"] == "deleted"
            seen = [json.dumps(frames)]
            listed = await client.get("/api/comments", params={"uri": "/posts/p"})
            assert [c["id"] for c in listed.json()["comments"]] == [ids["parent"], ids["reply"]]
            seen += [
                listed.text,
                (await client.get("/api/comments", params={"uri": "/posts/q"})).text,
                (await client.get("/posts/p")).text,
                (await client.get("/feeds/comments.atom")).text,
                (await client.get("/feeds/thread.atom", params={"uri": "/posts/p"})).text,
            ]
            for body in seen:
                for private in PRIVATE:
                    assert private not in body, private
            assert "Bob answers" in listed.text

            after = await client.get(link.replace(f"http://127.0.0.1:{port}", ""))
            assert "0 comments written with" in after.text
        for cid in (ids["parent"], ids["alone"], ids["held"], ids["other"]):
            stored = await server.state.comments.get(cid)
            assert (stored.email, stored.address, stored.website, stored.text) == (
                "",
                None,
                None,
                "",
            )
            assert stored.author == "[erased]" and stored.status == "deleted"
        assert (await server.state.comments.get(ids["reply"])).text == "Bob answers"
        async with server.state.db.read() as conn:
            kept = await conn.fetchval("SELECT COUNT(*) FROM mail_queue WHERE recipient = $1", ADA)
        assert kept == 0  # the delivered link mail went with the rest
        entries = await server.state.audit.newest(limit=10)
        assert [(e.action, e.target) for e in entries if e.action == "erase"] == [
            ("erase", "4 comments")
        ]
        assert all(ADA not in f"{e.target}{e.detail}{e.staff_name}" for e in entries)


async def test_bad_links_and_requests_get_clear_answers(
    database_url: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    """A forged or expired link is 403, a bad address 422, and requests are limited per
    e-mail address and per client address (429 with Retry-After)."""
    port = free_port()
    async with serve(mail_settings(database_url, tmp_path, mailbox, port), port) as server:
        async with server.client() as client:
            assert (await client.get("/privacy")).status_code == 200
            assert (await client.get("/privacy/mine", params={"t": "forged"})).status_code == 403
            expired = PrivacyLinks(server.settings.secret_key).token(ADA, time.time() - 86401)
            old = await client.get("/privacy/mine", params={"t": expired})
            assert old.status_code == 403 and "24 hours" in old.text
            bad = await client.post("/privacy", data={"email": "not an address"})
            assert bad.status_code == 422 and "not an address" in bad.text
            codes = [
                (await client.post("/privacy", data={"email": "same@example.org"})).status_code
                for _ in range(4)
            ]
            assert codes == [200, 200, 200, 429]
            limited = [
                await client.post("/privacy", data={"email": f"other{i}@example.org"})
                for i in range(3)
            ]
            # One client address may ask 5 times an hour; it asked 4 times above.
            assert [r.status_code for r in limited] == [200, 429, 429]
            assert int(limited[-1].headers["retry-after"]) > 0


async def test_staff_look_up_download_and_erase_an_address(
    database_url: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    """The admin's privacy page does the same for a written request, audited with the staff
    member's name and never the address."""
    port = free_port()
    async with serve(mail_settings(database_url, tmp_path, mailbox, port), port) as server:
        ids = await thread(server)
        await add_staff(server, "mod")
        async with server.client() as admin:
            csrf = await sign_in(admin, "mod")
            page = await admin.get("/admin/privacy", params={"email": "ADA@example.org"})
            assert page.status_code == 200 and "4 comments written with" in page.text
            got = await admin.post(
                "/admin/privacy/download", data={"csrf_token": csrf, "email": ADA}
            )
            assert len(got.json()["comments"]) == 4
            assert (
                await admin.post("/admin/privacy/erase", data={"email": ADA})
            ).status_code == 403  # no CSRF token
            queue_url = server.url.replace("http://", "ws://") + "/ws/moderation"
            bot = await staff_token(server, "bot")
            async with connect(
                queue_url, additional_headers={"Authorization": f"Bearer {bot}"}
            ) as queue:
                done = await admin.post(
                    "/admin/privacy/erase", data={"csrf_token": csrf, "email": ADA}
                )
                moderated = json.loads(await asyncio.wait_for(queue.recv(), 5))
            assert done.status_code == 303
            # Open queues drop the held comment; nothing of Ada's travels with it.
            assert moderated == {
                "type": "comment.moderated",
                "id": ids["held"],
                "status": "deleted",
                "by": "mod",
            }
            assert "4 comments were erased" in (await admin.get(done.headers["location"])).text
            audit = (await admin.get("/admin/audit")).text
            assert "4 comments" in audit and ADA not in audit
        assert (await server.state.comments.get(ids["other"])).email == ""


async def test_privacy_page_without_mail_says_to_write_to_the_operator(
    server: Server,
) -> None:
    """Without KIBITZ_SMTP_URL the page says no link can be sent (and sends none)."""
    async with httpx.AsyncClient(base_url=server.url) as client:
        page = await client.get("/privacy")
        assert "operator" in page.text
        refused = await client.post("/privacy", data={"email": ADA})
        assert refused.status_code == 503
