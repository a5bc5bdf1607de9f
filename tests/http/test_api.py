"""The JSON API through a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.posts import add_post
from tests.helpers.servers import Server, make_settings, serve

COMMENT = {"uri": "/posts/hello", "author": "Ada", "email": "ada@example.org", "text": "Hi there"}


async def test_post_then_read_shows_the_comment(server: Server) -> None:
    """A comment posted through the API is committed and read back in the thread."""
    await add_post(server)
    async with server.client() as client:
        created = await client.post("/api/comments", json=COMMENT)
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["comment"]["status"] == "approved"
        assert body["edit_token"]
        read = await client.get("/api/comments", params={"uri": "/posts/hello/"})
    data = read.json()
    assert data["uri"] == "/posts/hello"
    assert data["count"] == 1
    assert data["cursor"] == 1
    assert [c["author"] for c in data["comments"]] == ["Ada"]
    assert data["comments"][0]["html"] == "<p>Hi there</p>"


async def test_unknown_uri_is_an_empty_list(server: Server) -> None:
    """Reading a thread nobody commented on yet is not an error."""
    async with server.client() as client:
        read = await client.get("/api/comments", params={"uri": "/nothing/here"})
    assert read.status_code == 200
    assert read.json() == {
        "uri": "/nothing/here",
        "count": 0,
        "cursor": 0,
        "top_level": 0,
        "next": None,
        "closed": False,
        "comments": [],
    }


async def test_bad_requests_get_clear_4xx(server: Server) -> None:
    """Malformed JSON is 400, a wrong content type 415, a huge body 413, bad fields 422."""
    await add_post(server)
    async with server.client() as client:
        malformed = await client.post(
            "/api/comments", content=b"{nope", headers={"content-type": "application/json"}
        )
        wrong_type = await client.post(
            "/api/comments", content=b"author=x", headers={"content-type": "text/plain"}
        )
        huge = await client.post("/api/comments", json={**COMMENT, "text": "x" * 70_000})
        invalid = await client.post(
            "/api/comments", json={**COMMENT, "author": " ", "email": "nope", "text": ""}
        )
        surrogate = await client.post(
            "/api/comments",
            content=b'{"uri":"/posts/hello","author":"a","email":"a@b.cd","text":"\\ud800"}',
            headers={"content-type": "application/json"},
        )
    assert malformed.status_code == 400 and "error" in malformed.json()
    assert wrong_type.status_code == 415
    assert huge.status_code == 413
    assert invalid.status_code == 422
    assert set(invalid.json()["fields"]) == {"author", "email", "text"}
    assert surrogate.status_code == 422
    assert "text" in surrogate.json()["fields"]


async def test_pending_comment_never_reaches_readers(database_url: str, tmp_path: Path) -> None:
    """Under moderation 'all', a held comment is absent from the thread and its count."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")) as server:
        await add_post(server)
        async with server.client() as client:
            created = await client.post("/api/comments", json={**COMMENT, "text": "secret words"})
            assert created.json()["comment"]["status"] == "pending"
            read = await client.get("/api/comments", params={"uri": "/posts/hello"})
            counts = await client.get("/api/counts", params={"uri": "/posts/hello"})
            page = await client.get("/posts/hello")
    assert read.json()["comments"] == [] and read.json()["cursor"] == 0
    assert counts.json() == {"/posts/hello": 0}
    assert "secret words" not in page.text
    assert "ada@example.org" not in page.text + read.text


async def test_counts_follow_every_change_and_unknown_uris_count_zero(server: Server) -> None:
    """Cached counts change as soon as a comment is posted or deleted; unknown uris say 0."""
    await add_post(server)
    await add_post(server, "other")
    params = [("uri", "/posts/hello"), ("uri", "/posts/other"), ("uri", "/never/asked")]
    async with server.client() as client:
        first = await client.post("/api/comments", json=COMMENT)
        await client.post("/api/comments", json={**COMMENT, "text": "Second"})
        assert (await client.get("/api/counts", params=params)).json() == {
            "/posts/hello": 2,
            "/posts/other": 0,
            "/never/asked": 0,
        }
        await server.state.comments.change(first.json()["comment"]["id"], status="deleted")
        await client.post("/api/comments", json={**COMMENT, "uri": "/posts/other"})
        again = await client.get("/api/counts", params=params)
    assert again.json() == {"/posts/hello": 1, "/posts/other": 1, "/never/asked": 0}
