"""Answers given again (server/http/replay.py), through a real server on both backends.

A kept answer must be the application's answer byte for byte, headers included, and never
outlive the state it was made at: a new comment, a deletion, a vote or closing the thread
shows in the very next read, as does another origin's CORS answer.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import httpx

from server.http import replay
from tests.helpers.live import post, staff_token
from tests.helpers.posts import add_post
from tests.helpers.servers import Server
from tests.helpers.view import comment_tree, form_values, parse

PERSON = {"author": "Ada", "email": "ada@example.org"}

ORIGIN = "https://blog.example.org"


def _comparable(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k, v) for k, v in response.headers.items() if k != "date")
    return response.status_code, headers, response.content


async def _read(client: httpx.AsyncClient, uri: str, **headers: str) -> httpx.Response:
    answer = await client.get("/api/comments", params={"uri": uri}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer


def _given(server: Server) -> int:
    return server.state.replays.given


async def test_a_read_asked_again_is_given_again_byte_for_byte(server: Server) -> None:
    """The third identical read is a kept answer, identical to what the application said."""
    uri = (await add_post(server, "again")).uri
    await post(server, uri, text="First")
    async with server.client() as client:
        made = await _read(client, uri)  # teaches the protocol that this path may be kept
        kept = await _read(client, uri)  # kept now
        before = _given(server)
        given = await _read(client, uri)
    assert _given(server) == before + 1, "the read was not given again"
    assert _comparable(made) == _comparable(kept) == _comparable(given)
    assert "content-security-policy" in given.headers  # the middleware's headers are kept
    assert given.headers["date"]


async def test_every_change_readers_see_shows_in_the_next_read(server: Server) -> None:
    """New, deleted and spam comments, votes and closing each end the kept answer."""
    uri = (await add_post(server, "changes")).uri
    first = await post(server, uri, text="First")
    token = await staff_token(server)
    staff = {"Authorization": f"Bearer {token}"}

    async with server.client() as client:

        async def texts() -> list[str]:
            for _ in range(3):  # kept after the second read; asked again on the third
                body: dict[str, Any] = (await _read(client, uri)).json()
            return [c["html"] for c in body["comments"] if c.get("html")]

        assert await texts() == ["<p>First</p>"]
        second = await post(server, uri, text="Second")
        assert await texts() == ["<p>First</p>", "<p>Second</p>"]
        spam = await client.post(f"/api/comments/{second['id']}/spam", headers=staff)
        assert spam.status_code == 200, spam.text
        assert await texts() == ["<p>First</p>"]

        voter = (await client.post("/api/voters")).json()["voter"]
        voted = await client.post(
            f"/api/comments/{first['id']}/vote", json={"value": 1, "voter": voter}
        )
        assert voted.status_code == 200, voted.text
        for _ in range(3):
            thread = (await _read(client, uri)).json()
        assert thread["comments"][0]["up"] == 1

        closed = await client.post("/api/threads/close", params={"uri": uri}, headers=staff)
        assert closed.status_code == 200, closed.text
        for _ in range(3):
            thread = (await _read(client, uri)).json()
        assert thread["closed"] is True

        deleted = await client.post(f"/api/comments/{first['id']}/delete", headers=staff)
        assert deleted.status_code == 200, deleted.text
        assert await texts() == []


async def test_counts_asked_again_follow_new_comments(server: Server) -> None:
    """A counts question kept for an index page counts the comment posted after it."""
    uri = (await add_post(server, "counted")).uri
    params = [("uri", uri), ("uri", "/nowhere")]
    async with server.client() as client:
        for _ in range(3):
            asked = await client.get("/api/counts", params=params)
        before = _given(server)
        again = await client.get("/api/counts", params=params)
        assert _given(server) == before + 1
        assert again.json() == asked.json() == {uri: 0, "/nowhere": 0}
        await post(server, uri, text="Counted")
        after = await client.get("/api/counts", params=params)
    assert after.json() == {uri: 1, "/nowhere": 0}


async def test_a_kept_answer_is_only_given_to_the_same_headers(server: Server) -> None:
    """Another Origin gets its own CORS answer, never the one kept for a different origin."""
    uri = (await add_post(server, "origins")).uri
    await post(server, uri, text="First")
    async with server.client() as client:
        for _ in range(3):
            own = await _read(client, uri, origin=server.url)
        foreign = await _read(client, uri, origin=ORIGIN)
        plain = await _read(client, uri)
    assert own.headers["access-control-allow-origin"] == server.url
    assert "access-control-allow-origin" not in foreign.headers
    assert "access-control-allow-origin" not in plain.headers
    assert own.content == foreign.content == plain.content


async def test_unknown_threads_and_errors_are_answered_by_the_application(
    server: Server,
) -> None:
    """An unknown uri's empty answer follows the thread's creation; a 400 is never kept."""
    uri = "/posts/later"
    async with server.client() as client:
        for _ in range(3):
            empty = (await _read(client, uri)).json()
        assert empty["comments"] == []
        bad = [await client.get("/api/comments", params={"uri": ""}) for _ in range(3)]
    assert {b.status_code for b in bad} == {400}
    assert (await add_post(server, "later")).uri == uri
    await post(server, uri, text="Now")
    async with server.client() as client:
        later = (await _read(client, uri)).json()
    assert [c["html"] for c in later["comments"]] == ["<p>Now</p>"]


async def test_a_post_page_given_again_has_a_fresh_form_token_that_works(
    server: Server,
) -> None:
    """The kept page is cut at its form token: each reader gets a new one, which posts."""
    await add_post(server)
    await post(server, "/posts/hello", text="First")
    async with server.client() as client:
        pages = [await client.get("/posts/hello") for _ in range(3)]
        before = _given(server)
        await asyncio.sleep(0.01)  # form tokens carry the time to the millisecond
        given = await client.get("/posts/hello")
        assert _given(server) == before + 1
        tokens = [form_values(parse(p.text))["form_token"] for p in [*pages, given]]
        assert len(set(tokens)) == 4 and all("slot" not in t for t in tokens)
        assert [a for _, _, a in comment_tree(parse(given.text))] == ["Ada"]
        assert _comparable(given)[:2] == _comparable(pages[2])[:2]
        assert given.text.replace(tokens[3], "") == pages[2].text.replace(tokens[2], "")
        values = {**form_values(parse(given.text)), **PERSON, "author": "Bo", "text": "Two"}
        sent = await client.post("/posts/hello/comments", data=values)
        assert sent.status_code == 303, sent.text
        assert "#comment-" in sent.headers["location"]  # published, not held: the token held
        after = await client.get("/posts/hello")
    assert [a for _, _, a in comment_tree(parse(after.text))] == ["Ada", "Bo"]


async def test_a_page_of_a_big_thread_given_again_follows_new_comments(server: Server) -> None:
    """``?limit=`` pages are kept too, and a new comment ends them."""
    uri = (await add_post(server, "paged")).uri
    await post(server, uri, text="First")
    params = {"uri": uri, "limit": "2", "sort": "newest"}
    async with server.client() as client:
        for _ in range(3):
            page = await client.get("/api/comments", params=params)
        before = _given(server)
        again = await client.get("/api/comments", params=params)
        assert _given(server) == before + 1
        assert again.content == page.content
        await post(server, uri, text="Second")
        newest = (await client.get("/api/comments", params=params)).json()
    assert [c["html"] for c in newest["comments"]] == ["<p>Second</p>", "<p>First</p>"]


async def test_every_read_after_a_commit_sees_it_while_many_read_at_once(server: Server) -> None:
    """Reads asking together share one check, but never one begun before they arrived:
    reads sent while a comment commits may show it or not; every read sent after its 201
    shows it."""
    uri = (await add_post(server, "busy")).uri
    await post(server, uri, text="First")
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with server.client(limits=limits) as client:
        for _ in range(3):  # kept, then given again
            await _read(client, uri)
        before = _given(server)
        for i in range(5):
            during = [asyncio.create_task(_read(client, uri)) for _ in range(6)]
            await post(server, uri, text=f"Number {i}")
            after = await asyncio.gather(*(_read(client, uri) for _ in range(10)))
            await asyncio.gather(*during)
            for answer in after:
                shown = [c["html"] for c in answer.json()["comments"]]
                assert f"<p>Number {i}</p>" in shown, shown
    assert _given(server) > before


async def test_an_answer_that_sets_a_cookie_is_never_kept() -> None:
    """A cookie belongs to one reader: an answer carrying one is not kept, even if allowed."""

    async def sent(message: Any) -> None:
        return None

    async def version() -> int:
        return 1

    async def answered(headers: list[tuple[bytes, bytes]]) -> replay.Kept | None:
        recorder = replay.Recorder(sent, {replay.SCOPE_KEY: replay.Replayable(1, version)})
        await recorder({"type": "http.response.start", "status": 200, "headers": headers})
        await recorder({"type": "http.response.body", "body": b"{}"})
        return recorder.kept()

    plain = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    assert await answered(plain) is not None
    assert await answered([*plain, (b"Set-Cookie", b"kibitz_voter=abc")]) is None


GZIP = {"Accept-Encoding": "gzip, deflate, br, zstd"}  # as Chromium asks
LONG = "A comment long enough that the thread's answer is worth compressing. " * 4


async def _raw(client: httpx.AsyncClient, path: str, **params: str) -> tuple[httpx.Response, bytes]:
    """An answer and its body as sent, not decoded."""
    request = client.build_request("GET", path, params=params, headers=GZIP)
    answer = await client.send(request, stream=True)
    body = b"".join([chunk async for chunk in answer.aiter_raw()])
    await answer.aclose()
    assert answer.status_code == 200
    return answer, body


async def test_a_kept_read_is_given_gzipped_to_readers_who_accept_gzip(server: Server) -> None:
    """Compressed once, given to every reader who accepts gzip, never to one who does not;
    the answer is the same JSON either way and says it varies by Accept-Encoding."""
    uri = (await add_post(server, "zipped")).uri
    for i in range(3):
        await post(server, uri, text=f"{i}: {LONG}")
    async with server.client() as client:
        plain = await _read(client, uri, **{"accept-encoding": "identity"})
        zipped = [await _raw(client, "/api/comments", uri=uri) for _ in range(4)]
        refused = await _read(client, uri, **{"accept-encoding": "br, gzip;q=0"})
        bare = await client.get(
            "/api/comments", params={"uri": uri}, headers={"accept-encoding": ""}
        )
    assert plain.headers["vary"] == "Accept-Encoding"
    assert "content-encoding" not in plain.headers
    first, later = zipped[0], zipped[1:]
    assert "content-encoding" not in first[0].headers  # made by the application: not kept yet
    for answer, body in later:
        assert answer.headers["content-encoding"] == "gzip"
        assert answer.headers["vary"] == "Accept-Encoding"
        assert int(answer.headers["content-length"]) == len(body) < len(plain.content) / 2
        assert gzip.decompress(body) == plain.content
    assert server.state.replays.gzipped == 1  # once, for all of them
    for answer in (refused, bare):
        assert "content-encoding" not in answer.headers
        assert answer.content == plain.content

    await post(server, uri, text=f"3: {LONG}")  # a new state: compressed anew
    async with server.client() as client:
        for _ in range(3):
            answer, body = await _raw(client, "/api/comments", uri=uri)
    assert answer.headers["content-encoding"] == "gzip"
    assert len(json.loads(gzip.decompress(body))["comments"]) == 4


async def test_a_gzipped_post_page_has_a_fresh_form_token_that_works(server: Server) -> None:
    """The page kept gzipped around its hole: each answer inflates (CRC checked) to the page
    with a token of its own, and that token posts."""
    await add_post(server)
    await post(server, "/posts/hello", text=LONG)
    async with server.client() as client:
        pages = []
        for _ in range(4):
            answer, body = await _raw(client, "/posts/hello")
            encoded = answer.headers.get("content-encoding") == "gzip"
            pages.append((encoded, gzip.decompress(body) if encoded else body))
        assert [encoded for encoded, _ in pages] == [False, False, True, True]
        html = [page.decode() for _, page in pages]
        tokens = [form_values(parse(h))["form_token"] for h in html]
        assert len(set(tokens)) == 4
        assert html[3].replace(tokens[3], "") == html[1].replace(tokens[1], "")
        values = {**form_values(parse(html[3])), **PERSON, "author": "Bo", "text": "Zipped"}
        await asyncio.sleep(0.01)
        sent = await client.post("/posts/hello/comments", data=values)
        assert sent.status_code == 303, sent.text
        assert "#comment-" in sent.headers["location"]  # published, not held
        after = await client.get("/posts/hello", headers=GZIP)
    assert [a for _, _, a in comment_tree(parse(after.text))] == ["Ada", "Bo"]
