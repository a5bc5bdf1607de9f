"""Bans: the staff API, what a banned commenter sees, the admin, and bans across processes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from db.bans import NewBan
from db.models import now
from server.auth.credentials import hash_password
from server.discussion.lookalikes import skeleton
from tests.helpers.servers import Server, make_settings, serve
from tests.helpers.sso import SECRET, token
from tests.helpers.staff import add_staff, sign_in

TOKEN = "kbz_ban-test-token"
COMMENT = {"uri": "/posts/p", "author": "Reader", "email": "reader@example.org", "text": "Hi"}


async def setup(server: Server) -> httpx.AsyncClient:
    """A post, a moderator with an API token, and a client that sends the token."""
    await server.state.posts.add(slug="p", title="P", author="A", body_html="<p>b</p>")
    member = await server.state.staff.add("mod", "moderator", hash_password("pw"))
    await server.state.staff.add_token(member.id, TOKEN)
    return server.client(headers={"Authorization": f"Bearer {TOKEN}"})


async def comment(client: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    return await client.post("/api/comments", json={**COMMENT, **fields})


async def test_bans_api_validates_lists_lifts_and_audits(database_url: str, tmp_path: Path) -> None:
    """POST /api/bans answers 201 with the ban, 422 for unparsable notations, 401 without
    credentials; GET lists; DELETE lifts (then 404); each change is in the audit log."""
    async with serve(make_settings(database_url, tmp_path)) as server:
        staff = await setup(server)
        async with server.client() as anonymous:
            assert (await anonymous.post("/api/bans", json={"email": "a@b.c"})).status_code == 401
            assert (await anonymous.get("/api/bans")).status_code == 401
        async with staff:
            for bad, field in (
                ({"address": "300.1.2.3"}, "address"),
                ({"address": "203.0.113.0/40"}, "address"),
                ({"address": "somewhere"}, "address"),
                ({"email": "not an address"}, "email"),
                ({"email": "a@b.c", "expires": "next tuesday"}, "expires"),
                ({"email": "a@b.c", "expires": "2001-01-01T00:00:00Z"}, "expires"),
                ({"email": 12}, "email"),
                ({"reason": "no target"}, "email"),
                ({"name": "..."}, "name"),
            ):
                refused = await staff.post("/api/bans", json=bad)
                assert refused.status_code == 422, (bad, refused.text)
                assert field in refused.json()["fields"], (bad, refused.json())
            expires = (now() + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
            made = await staff.post(
                "/api/bans",
                json={
                    "email": "Troll@Example.org",
                    "address": "203.0.113.9/24",
                    "reason": "kept insulting people",
                    "expires": expires,
                },
            )
            assert made.status_code == 201, made.text
            ban = made.json()
            assert ban["email"] == "troll@example.org"
            assert ban["address"] == "203.0.113.0/24"
            assert ban["expires"] == expires and ban["by"] == "mod" and ban["live"] is True
            listed = (await staff.get("/api/bans")).json()["bans"]
            assert [b["id"] for b in listed] == [ban["id"]]
            assert (await staff.delete(f"/api/bans/{ban['id']}")).status_code == 204
            assert (await staff.delete(f"/api/bans/{ban['id']}")).status_code == 404
            assert (await staff.get("/api/bans")).json()["bans"] == []
        actions = [(e.action, e.target) for e in await server.state.audit.newest(limit=10)]
        assert ("ban", f"ban {ban['id']}") in actions
        assert ("unban", f"ban {ban['id']}") in actions


async def test_banned_commenters_get_the_held_answer_and_are_kept_as_spam(
    database_url: str, tmp_path: Path
) -> None:
    """By e-mail (any case), network, SSO sub or look-alike name: the answer equals a held
    comment's, the comment is spam with reason `banned`, and readers never see it; an expired
    ban or a lifted one no longer applies."""
    settings = make_settings(
        database_url,
        tmp_path,
        KIBITZ_TRUSTED_PROXIES="127.0.0.1",
        KIBITZ_SSO_SECRET=SECRET,
        KIBITZ_MODERATION="first-time",
    )
    async with serve(settings) as server:
        staff = await setup(server)
        async with staff, server.client() as reader:
            for ban in (
                {"email": "TROLL@example.org"},
                {"address": "198.51.100.0/24"},
                {"address": "2001:db8::/32"},
                {"sub": "troll-7"},
                {"name": "Troll"},
            ):
                assert (await staff.post("/api/bans", json=ban)).status_code == 201
            await server.state.bans.add(
                NewBan(email="old@example.org", expires=now() - timedelta(hours=1)), None, "t"
            )
            held = await comment(reader, author="Newcomer", email="new@example.org")
            answers = {
                "email": await comment(reader, email="troll@EXAMPLE.org"),
                "+tag": await comment(reader, email="troll+x@example.org"),
                "sub": await comment(reader, sso=token(sub="troll-7", name="Someone")),
                "name": await comment(reader, author="\u0422r\u043e11", email="x@example.org"),
            }
            answers["network"] = await reader.post(
                "/api/comments",
                json={**COMMENT, "email": "n@example.org"},
                headers={"X-Forwarded-For": "198.51.100.77"},
            )
            answers["network6"] = await reader.post(
                "/api/comments",
                json={**COMMENT, "email": "six@example.org"},
                headers={"X-Forwarded-For": "2001:db8:0:1::77"},
            )
            outside = await reader.post(
                "/api/comments",
                json={**COMMENT, "email": "near@example.org", "text": "next door"},
                headers={"X-Forwarded-For": "198.51.101.1"},
            )
            stored = await server.state.comments.get(outside.json()["comment"]["id"])
            assert stored.reason != "banned"  # just outside the banned network
            assert held.status_code == 201
            shape = held.json()["comment"]
            for kind, answer in answers.items():
                assert answer.status_code == 201, (kind, answer.text)
                got = answer.json()["comment"]
                assert set(got) == set(shape), kind
                assert got["status"] == "pending", kind
                assert set(answer.json()) == set(held.json()), kind
                stored = await server.state.comments.get(got["id"])
                assert (stored.status, stored.reason) == ("spam", "banned"), kind
            expired = await comment(reader, email="old@example.org")
            assert (await server.state.comments.get(expired.json()["comment"]["id"])).reason != (
                "banned"
            )
            listed = await reader.get("/api/comments", params={"uri": "/posts/p"})
            assert listed.json()["comments"] == []
            queue = (await staff.get("/api/moderation", params={"status": "pending"})).json()
            assert all(c["reason"] != "banned" for c in queue["comments"])

            # A banned commenter may still edit their comment as if it were held.
            mine = answers["email"].json()
            edited = await reader.patch(
                f"/api/comments/{mine['comment']['id']}",
                json={"text": "changed"},
                headers={"Authorization": f"Bearer {mine['edit_token']}"},
            )
            assert edited.status_code == 200
            assert edited.json()["comment"]["status"] == "pending"
            gone = await reader.delete(
                f"/api/comments/{mine['comment']['id']}",
                headers={"Authorization": f"Bearer {mine['edit_token']}"},
            )
            assert gone.status_code == 204

            # The plain form answers a banned commenter exactly as a held one, too.
            form = await reader.post(
                "/posts/p/comments",
                data={"author": "Reader", "email": "troll@example.org", "text": "by form"},
            )
            assert form.status_code == 303
            assert form.headers["location"] == "/posts/p?notice=held#respond"

            for ban in (await staff.get("/api/bans")).json()["bans"]:
                await staff.delete(f"/api/bans/{ban['id']}")
            after = await comment(reader, email="troll@example.org")
            stored = await server.state.comments.get(after.json()["comment"]["id"])
            assert stored.reason != "banned"


async def test_ban_made_on_one_process_holds_on_the_other(pg_url: str, tmp_path: Path) -> None:
    """Two app instances on one PostgreSQL: a ban made through one applies on the other at once."""
    first = make_settings(pg_url, tmp_path / "a")
    second = make_settings(pg_url, tmp_path / "b")
    async with serve(first) as one, serve(second) as two:
        staff = await setup(one)
        async with staff, two.client() as reader:
            before = await comment(reader, email="later-banned@example.org")
            assert before.json()["comment"]["status"] == "approved"
            made = await staff.post("/api/bans", json={"email": "later-banned@example.org"})
            assert made.status_code == 201
            after = await comment(reader, email="later-banned@example.org")
            assert after.json()["comment"]["status"] == "pending"
            stored = await two.state.comments.get(after.json()["comment"]["id"])
            assert (stored.status, stored.reason) == ("spam", "banned")
            await staff.delete(f"/api/bans/{made.json()['id']}")
            lifted = await comment(reader, email="later-banned@example.org")
            assert lifted.json()["comment"]["status"] == "approved"


async def test_ban_this_author_from_the_queue_and_the_bans_page(
    database_url: str, tmp_path: Path
) -> None:
    """The queue offers "ban this author" on each comment; it bans their address, the bans
    page lists the ban and lifts it, and both land in the audit log."""
    settings = make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")
    async with serve(settings) as server:
        await server.state.posts.add(slug="p", title="P", author="A", body_html="<p>b</p>")
        await add_staff(server, "mod")
        async with server.client() as reader:
            held = (await comment(reader, email="Pest@example.org")).json()["comment"]
        async with server.client() as admin:
            csrf = await sign_in(admin, "mod")
            queue = await admin.get("/admin/queue")
            assert f'action="/admin/comments/{held["id"]}/ban"' in queue.text
            banned = await admin.post(
                f"/admin/comments/{held['id']}/ban",
                data={"csrf_token": csrf, "reason": "pest", "back": "/admin/queue"},
            )
            assert banned.status_code == 303
            page = await admin.get("/admin/bans")
            assert "pest@example.org" in page.text and ">pest<" in page.text
            ban = (await server.state.bans.all())[0]
            async with server.client() as reader:
                again = (await comment(reader, email="pest@example.org")).json()["comment"]
            assert (await server.state.comments.get(again["id"])).reason == "banned"
            bad = await admin.post("/admin/bans", data={"csrf_token": csrf, "address": "x.y"})
            assert bad.status_code == 422
            added = await admin.post(
                "/admin/bans", data={"csrf_token": csrf, "name": "Wally", "reason": "troll"}
            )
            assert added.status_code == 303
            assert any(b.name_key == skeleton("Wa11y") for b in await server.state.bans.all())
            lifted = await admin.post(f"/admin/bans/{ban.id}/delete", data={"csrf_token": csrf})
            assert lifted.status_code == 303
            audit = await admin.get("/admin/audit")
            assert "unban" in audit.text and f"author of comment {held['id']}" in audit.text
