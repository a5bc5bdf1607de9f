"""Commenters edit and delete their own comment with the edit token, inside the window only."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from db.models import now
from tests.helpers.posts import add_post
from tests.helpers.servers import Server, make_settings, serve

COMMENT = {"uri": "/posts/hello", "author": "Ada", "email": "ada@example.org", "text": "Typo hre"}


async def _post(client, **overrides: object) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    created = await client.post("/api/comments", json={**COMMENT, **overrides})
    assert created.status_code == 201, created.text
    return created.json()["comment"]["id"], created.json()["edit_token"]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _events(server: Server) -> list[tuple[str, int]]:
    thread = await server.state.comments.thread("/posts/hello")
    return [(e.type, e.comment_id) for e in await server.state.comments.events_since(thread.id, 0)]


async def test_edit_inside_the_window_resanitises_and_broadcasts(server: Server) -> None:
    """PATCH with the token re-sanitises the text, sets ``edited`` and writes comment.updated."""
    await add_post(server)
    async with server.client() as client:
        comment_id, token = await _post(client)
        edited = await client.patch(
            f"/api/comments/{comment_id}",
            headers=_auth(token),
            json={"text": 'Typo fixed <script>alert(1)</script><b onclick="x()">bold</b>'},
        )
        thread = await client.get("/api/comments", params={"uri": "/posts/hello"})
    assert edited.status_code == 200, edited.text
    shown = thread.json()["comments"][0]
    assert shown["edited"] is not None
    assert "<script" not in shown["html"] and "onclick" not in shown["html"]
    assert "<b>bold</b>" in shown["html"] and "Typo fixed" in shown["html"]
    assert await _events(server) == [
        ("comment.created", comment_id),
        ("comment.updated", comment_id),
    ]


async def test_delete_without_replies_removes_it(server: Server) -> None:
    """DELETE with the token removes the comment from the thread and writes comment.deleted."""
    await add_post(server)
    async with server.client() as client:
        comment_id, token = await _post(client)
        deleted = await client.delete(f"/api/comments/{comment_id}", headers=_auth(token))
        thread = await client.get("/api/comments", params={"uri": "/posts/hello"})
    assert deleted.status_code == 204
    assert thread.json()["comments"] == []
    assert await _events(server) == [
        ("comment.created", comment_id),
        ("comment.deleted", comment_id),
    ]


async def test_delete_with_replies_leaves_a_placeholder(server: Server) -> None:
    """A deleted comment with a reply stays as an empty placeholder (comment.updated)."""
    await add_post(server)
    async with server.client() as client:
        parent, token = await _post(client, text="the parent with a secret")
        reply, _ = await _post(
            client, author="Bea", email="bea@example.org", text="a reply", parent=parent
        )
        assert (
            await client.delete(f"/api/comments/{parent}", headers=_auth(token))
        ).status_code == 204
        thread = (await client.get("/api/comments", params={"uri": "/posts/hello"})).json()
        page = (await client.get("/posts/hello")).text
    placeholder = thread["comments"][0]
    assert placeholder == {
        **placeholder,
        "id": parent,
        "status": "deleted",
        "author": "",
        "html": "",
        "website": None,
    }
    assert thread["comments"][1]["id"] == reply
    assert "the parent with a secret" not in page and "This comment was deleted." in page
    assert (await _events(server))[-1] == ("comment.updated", parent)


async def test_forged_and_foreign_tokens_are_refused(server: Server) -> None:
    """A made-up token, a tampered one, another comment's token, a fake API token or none:
    403, and the comment is unchanged."""
    await add_post(server)
    async with server.client() as client:
        mine, token = await _post(client)
        _, other_token = await _post(client, author="Bea", email="bea@example.org", text="hi")
        tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        attempts = [
            await client.patch(f"/api/comments/{mine}", json={"text": "x"}),
            await client.patch(
                f"/api/comments/{mine}", json={"text": "x"}, headers=_auth("made.up.token")
            ),
            await client.patch(
                f"/api/comments/{mine}", json={"text": "x"}, headers=_auth(tampered)
            ),
            await client.patch(
                f"/api/comments/{mine}", json={"text": "x"}, headers=_auth(other_token)
            ),
            await client.patch(
                f"/api/comments/{mine}", json={"text": "x"}, headers=_auth("kbz_" + "a" * 43)
            ),
            await client.delete(f"/api/comments/{mine}", headers=_auth(other_token)),
        ]
    assert [a.status_code for a in attempts] == [403] * 6
    assert (await server.state.comments.get(mine)).text == COMMENT["text"]


async def test_after_the_window_edit_and_delete_are_403(database_url: str, tmp_path: Path) -> None:
    """Once KIBITZ_EDIT_WINDOW has passed, the token no longer works, with a clear message."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_EDIT_WINDOW="1")) as server:
        await add_post(server)
        async with server.client() as client:
            comment_id, token = await _post(client)
            await asyncio.sleep(2.2)  # the edit window under test passes on the server's clock
            edit = await client.patch(
                f"/api/comments/{comment_id}", headers=_auth(token), json={"text": "too late"}
            )
            delete = await client.delete(f"/api/comments/{comment_id}", headers=_auth(token))
        assert (await server.state.comments.get(comment_id)).status == "approved"
    assert edit.status_code == delete.status_code == 403
    assert "time to edit or delete this comment has passed" in edit.json()["error"]


async def test_window_is_also_checked_against_the_comment_date(server: Server) -> None:
    """A fresh, valid token does not reopen the window of an older comment."""
    await add_post(server)
    async with server.client() as client:
        comment_id, token = await _post(client)
        async with server.state.db.transaction() as conn:
            await conn.execute(
                "UPDATE comments SET created = $1 WHERE id = $2",
                now() - timedelta(hours=1),
                comment_id,
            )
        edit = await client.patch(
            f"/api/comments/{comment_id}", headers=_auth(token), json={"text": "sneaky"}
        )
    assert edit.status_code == 403 and "passed" in edit.json()["error"]


async def test_commenter_cannot_touch_a_comment_staff_marked_as_spam(
    database_url: str, tmp_path: Path
) -> None:
    """Once staff marked it as spam, the commenter's token neither edits nor deletes it."""
    from tests.helpers.staff import add_staff, sign_in

    async with serve(make_settings(database_url, tmp_path)) as server:
        await add_post(server)
        await add_staff(server, "mod")
        async with server.client() as client, server.client() as staff:
            comment_id, token = await _post(client)
            csrf = await sign_in(staff, "mod")
            await staff.post(f"/api/comments/{comment_id}/spam", headers={"X-CSRF-Token": csrf})
            edit = await client.patch(
                f"/api/comments/{comment_id}", headers=_auth(token), json={"text": "let me back"}
            )
            delete = await client.delete(f"/api/comments/{comment_id}", headers=_auth(token))
        assert (await server.state.comments.get(comment_id)).status == "spam"
    assert edit.status_code == delete.status_code == 404


async def test_edit_of_a_held_comment_stays_private(database_url: str, tmp_path: Path) -> None:
    """Editing a pending comment writes no event and shows nothing to readers."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")) as server:
        await add_post(server)
        async with server.client() as client:
            comment_id, token = await _post(client)
            edit = await client.patch(
                f"/api/comments/{comment_id}", headers=_auth(token), json={"text": "still private"}
            )
            thread = await client.get("/api/comments", params={"uri": "/posts/hello"})
        assert await _events(server) == []
    assert edit.status_code == 200 and edit.json()["comment"]["status"] == "pending"
    assert thread.json()["comments"] == [] and "still private" not in thread.text
