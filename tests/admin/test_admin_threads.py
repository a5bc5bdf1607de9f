"""Pins, closing and vote counts in the admin pages, with the audit log, on both backends."""

from __future__ import annotations

from tests.helpers.posts import add_post
from tests.helpers.servers import Server
from tests.helpers.staff import add_staff, sign_in
from tests.helpers.threads import URI, seed


async def test_admin_pins_closes_and_shows_votes(server: Server) -> None:
    """Staff pin from the approved list and close/open on the threads page; all audited."""
    await add_post(server, "big", "Big")
    ids = await seed(server, 2)
    await add_staff(server, "maren")
    async with server.client() as client:
        voter = (await client.post("/api/voters")).json()["voter"]
        await client.post(f"/api/comments/{ids[1]}/vote", json={"value": 1, "voter": voter})
        csrf = await sign_in(client, "maren")
        approved = await client.get("/admin/comments/approved")
        pinned = await client.post(
            f"/admin/comments/{ids[1]}/pin",
            data={"csrf_token": csrf, "action": "pin", "back": "/admin/comments/approved"},
        )
        no_csrf = await client.post(f"/admin/comments/{ids[0]}/pin", data={"action": "pin"})
        threads = await client.get("/admin/threads")
        closed = await client.post(
            "/admin/threads", data={"csrf_token": csrf, "action": "close", "uri": URI}
        )
        after = await client.get("/admin/threads")
        refused = await client.post(
            "/api/comments", json={"uri": URI, "author": "A", "email": "a@b.cd", "text": "x"}
        )
        reopened = await client.post(
            "/admin/threads", data={"csrf_token": csrf, "action": "open", "uri": URI}
        )
        bad = await client.post(
            "/admin/threads", data={"csrf_token": csrf, "action": "explode", "uri": URI}
        )
        read = (await client.get("/api/comments", params={"uri": URI, "limit": "5"})).json()
        audit = await client.get("/admin/audit")
    assert "▲ 1 · ▼ 0" in approved.text and 'value="pin"' in approved.text
    assert pinned.status_code == 303 and no_csrf.status_code == 403
    assert [c["id"] for c in read["comments"]][:1] == [ids[1]] and read["comments"][0]["pinned"]
    assert threads.status_code == 200 and URI in threads.text and "Close comments" in threads.text
    assert closed.status_code == 303 and "Open comments" in after.text
    assert refused.status_code == 403 and reopened.status_code == 303
    assert bad.status_code == 400
    for action in ("pin", "close", "open"):
        assert f"<td>{action}</td>" in audit.text
