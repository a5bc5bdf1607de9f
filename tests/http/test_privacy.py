"""E-mail and client addresses never reach readers, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers.posts import add_post
from tests.helpers.servers import make_settings, serve

ADDRESS = "203.0.113.77"
EMAILS = (
    "visible.person@example.org",
    "held.person@example.org",
    "gone.person@example.org",
    "reply.person@example.org",
)


async def test_emails_and_addresses_never_reach_readers(database_url: str, tmp_path: Path) -> None:
    """Pages, /api/comments, /api/counts, /api/config and POST answers carry no e-mail or IP.

    The client address comes through a trusted proxy's X-Forwarded-For, so it is a distinctive
    one, and the test first proves the server did record it, so the search below can fail.
    """
    settings = make_settings(
        database_url, tmp_path, KIBITZ_TRUSTED_PROXIES="127.0.0.1", KIBITZ_MODERATION="first-time"
    )
    async with serve(settings) as server:
        await add_post(server, "p", "P", author="A", body_html="<p>b</p>")
        headers = {"X-Forwarded-For": ADDRESS}
        answers: list[httpx.Response] = []
        async with server.client(headers=headers) as client:

            def comment(email: str, text: str, parent: int | None = None) -> dict[str, object]:
                return {
                    "uri": "/posts/p",
                    "author": "Someone",
                    "email": email,
                    "text": text,
                    "website": "https://someone.example/",
                    "parent": parent,
                }

            # First-time commenters are held; approve one so its next comment is published.
            first = await client.post("/api/comments", json=comment(EMAILS[0], "first"))
            await server.state.comments.change(first.json()["comment"]["id"], status="approved")
            visible = await client.post("/api/comments", json=comment(EMAILS[0], "visible"))
            held = await client.post("/api/comments", json=comment(EMAILS[1], "held words"))
            gone = await client.post("/api/comments", json=comment(EMAILS[2], "gone words"))
            gone_id = gone.json()["comment"]["id"]
            await server.state.comments.change(gone_id, status="approved")
            reply = await client.post("/api/comments", json=comment(EMAILS[3], "reply", gone_id))
            await server.state.comments.change(reply.json()["comment"]["id"], status="approved")
            await server.state.comments.change(gone_id, status="deleted")  # a placeholder now
            form = await client.post(
                "/posts/p/comments",
                data={"author": "Formy", "email": "form.person@example.org", "text": "by form"},
            )
            answers += [first, visible, held, gone, reply, form]
            for path in (
                "/",
                "/posts/p",
                "/posts/p?replytocom=1",
                "/api/comments?uri=/posts/p",
                "/api/counts?uri=/posts/p&uri=/nothing",
                "/api/config",
            ):
                answers.append(await client.get(path))

        stored = await server.state.comments.get(visible.json()["comment"]["id"])
        assert stored is not None and stored.address == ADDRESS
        assert visible.json()["comment"]["status"] == "approved"
        assert held.json()["comment"]["status"] == "pending"

    assert all(a.status_code < 400 for a in answers), [(a.url, a.status_code) for a in answers]
    for answer in answers:
        seen = answer.text + " ".join(f"{k}: {v}" for k, v in answer.headers.items())
        for secret in (*EMAILS, "form.person@example.org", ADDRESS):
            assert secret not in seen, f"{secret} in {answer.request.method} {answer.url}"
    page = answers[7].text + answers[9].text
    assert "held words" not in page and "gone words" not in page
    assert "visible" in page
