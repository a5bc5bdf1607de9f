"""Keyset pages of big threads through a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import itertools
import re
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.auth.credentials import new_api_token
from tests.helpers.posts import add_post
from tests.helpers.servers import Server, make_settings, serve
from tests.helpers.threads import URI, seed

_unique = itertools.count()


async def big_post(server: Server, slug: str = "big") -> None:
    await add_post(server, slug, "Big", body_html="<p>x</p>")


async def post(client: httpx.AsyncClient, text: str, uri: str = URI, **extra: Any) -> int:
    body = {"uri": uri, "author": "Ada", "email": "ada@example.org", "text": text, **extra}
    answer = await client.post("/api/comments", json=body)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["comment"]["id"])


async def read_all(
    client: httpx.AsyncClient, uri: str, sort: str, limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Follow ``next`` to the end; return the top-level comments and every comment seen."""
    tops: list[dict[str, Any]] = []
    seen: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params = {"uri": uri, "sort": sort, "limit": str(limit)}
        if after:
            params["after"] = after
        page = (await client.get("/api/comments", params=params)).json()
        seen += page["comments"]
        tops += [c for c in page["comments"] if c["parent"] is None]
        after = page["next"]
        if after is None:
            return tops, seen


async def test_pages_cover_the_thread_in_every_order(server: Server) -> None:
    """oldest, newest and best pages give each top-level comment once, replies under it."""
    await big_post(server)
    ids = await seed(server, 7)
    async with server.client() as client:
        reply = await post(client, "a reply", parent=ids[2])
        voter = (await client.post("/api/voters")).json()["voter"]
        await client.post(f"/api/comments/{ids[5]}/vote", json={"value": 1, "voter": voter})
        first = (
            await client.get("/api/comments", params={"uri": URI, "limit": "3", "sort": "oldest"})
        ).json()
        oldest, seen = await read_all(client, URI, "oldest", 3)
        newest, _ = await read_all(client, URI, "newest", 2)
        best, _ = await read_all(client, URI, "best", 4)
    assert first["top_level"] == 7 and first["count"] == 8 and first["closed"] is False
    assert first["next"] and [c["id"] for c in first["comments"]] == [*ids[:2], ids[2], reply]
    assert [c["id"] for c in oldest] == ids
    assert [c["id"] for c in newest] == ids[::-1]
    assert [c["id"] for c in best] == [ids[5], *ids[:5], ids[6]]
    assert next(c for c in seen if c["id"] == ids[5])["up"] == 1
    assert {"up", "down", "pinned"} <= set(seen[0])


async def test_pinned_come_first_in_every_order(server: Server) -> None:
    """A pinned top-level comment leads oldest, newest and best; readers see pinned: true."""
    await big_post(server)
    ids = await seed(server, 5)
    async with server.client() as client:
        token = await server_token(server)
        pinned = await client.post(f"/api/comments/{ids[3]}/pin", headers=token)
        assert pinned.status_code == 200, pinned.text
        orders = {
            sort: [c["id"] for c in (await read_all(client, URI, sort, 2))[0]]
            for sort in ("oldest", "newest", "best")
        }
        whole = (await client.get("/api/comments", params={"uri": URI})).json()
    assert orders["oldest"] == [ids[3], ids[0], ids[1], ids[2], ids[4]]
    assert orders["newest"] == [ids[3], ids[4], ids[2], ids[1], ids[0]]
    assert orders["best"][0] == ids[3]
    assert next(c for c in whole["comments"] if c["id"] == ids[3])["pinned"] is True


async def test_a_page_read_again_shows_every_change_since(server: Server) -> None:
    """The same page asked again (a cached body) shows a new reply, a vote, a pin, closing
    and a removal at once: the cache is keyed by the state of the thread readers see."""
    await big_post(server)
    ids = await seed(server, 4)
    params = {"uri": URI, "limit": "2"}
    async with server.client() as client:
        token = await server_token(server)

        async def page() -> dict[str, Any]:
            answer = await client.get("/api/comments", params=params)
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

        before = await page()
        assert before == await page()  # asked twice, answered the same
        reply = await post(client, "a reply", parent=ids[1])
        with_reply = await page()
        voter = (await client.post("/api/voters")).json()["voter"]
        await client.post(f"/api/comments/{ids[0]}/vote", json={"value": 1, "voter": voter})
        voted = await page()
        await client.post(f"/api/comments/{ids[3]}/pin", headers=token)
        pinned = await page()
        await client.post("/api/threads/close", params={"uri": URI}, headers=token)
        closed = await page()
        await server.state.comments.change(reply, status="deleted")
        removed = await page()
    assert [c["id"] for c in before["comments"]] == ids[:2] and before["closed"] is False
    assert [c["id"] for c in with_reply["comments"]] == [*ids[:2], reply]
    assert next(c for c in voted["comments"] if c["id"] == ids[0])["up"] == 1
    assert pinned["comments"][0]["id"] == ids[3]
    assert closed["closed"] is True
    assert reply not in [c["id"] for c in removed["comments"]]


async def server_token(server: Server) -> dict[str, str]:
    """An API token for a fresh staff member, as an Authorization header."""
    member = await server.state.staff.add(f"mod{next(_unique)}", "moderator", "x")
    token = new_api_token()
    await server.state.staff.add_token(member.id, token)
    return {"Authorization": f"Bearer {token}"}


async def test_bad_page_parameters_are_clear_400s(server: Server) -> None:
    """Unknown sort, bad limits and forged or foreign cursors are 400 with the error shape."""
    await big_post(server)
    await big_post(server, "other")
    await seed(server, 3)
    await seed(server, 3, uri="/posts/other")
    async with server.client() as client:
        page = (await client.get("/api/comments", params={"uri": URI, "limit": "1"})).json()
        cursor = page["next"]
        answers = {
            "sort": await client.get("/api/comments", params={"uri": URI, "sort": "top"}),
            "limit0": await client.get("/api/comments", params={"uri": URI, "limit": "0"}),
            "limit201": await client.get("/api/comments", params={"uri": URI, "limit": "201"}),
            "limitx": await client.get("/api/comments", params={"uri": URI, "limit": "²"}),
            "forged": await client.get(
                "/api/comments", params={"uri": URI, "limit": "1", "after": cursor[:-2] + "xx"}
            ),
            "garbage": await client.get(
                "/api/comments", params={"uri": URI, "limit": "1", "after": "%%%"}
            ),
            "foreign": await client.get(
                "/api/comments", params={"uri": "/posts/other", "limit": "1", "after": cursor}
            ),
            "other_sort": await client.get(
                "/api/comments",
                params={"uri": URI, "limit": "1", "sort": "newest", "after": cursor},
            ),
            "no_thread": await client.get(
                "/api/comments", params={"uri": "/nowhere", "limit": "1", "after": cursor}
            ),
        }
    for name, answer in answers.items():
        assert answer.status_code == 400, (name, answer.text)
        assert answer.json()["error"] and answer.json()["fields"], name


async def test_private_comments_never_reach_pages(database_url: str, tmp_path: Path) -> None:
    """Pending, spam and deleted comments stay out of every page, count and top_level."""
    settings = make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")
    async with serve(settings) as server:
        await big_post(server)
        shown = await seed(server, 3)
        pending = await seed(server, 2, status="pending", prefix="held")
        spam = await seed(server, 1, status="spam", prefix="junk")
        async with server.client() as client:
            held = await client.post(
                "/api/comments",
                json={"uri": URI, "author": "Eve", "email": "eve@example.org", "text": "secret"},
            )
            assert held.json()["comment"]["status"] == "pending"
            tops, seen = await read_all(client, URI, "newest", 2)
            best, _ = await read_all(client, URI, "best", 200)
            vote = await client.post(
                f"/api/comments/{spam[0]}/vote",
                json={"value": 1, "voter": (await client.post("/api/voters")).json()["voter"]},
            )
            links = [await client.get(f"/c/{i}") for i in (*pending, *spam)]
            page = await client.get(URI, params={"sort": "best"})
    assert [c["id"] for c in tops] == shown[::-1]
    assert sorted(c["id"] for c in best) == shown
    assert all(c["status"] == "approved" for c in seen)
    assert "secret" not in str(seen) and "eve@example.org" not in str(seen)
    assert vote.status_code == 404
    assert [link.status_code for link in links] == [404, 404, 404]
    for hidden in ("secret", "held 0", "held 1", "junk 0"):
        assert hidden not in page.text and hidden not in str(seen) + str(best)


async def test_unlimited_read_is_the_whole_thread_as_before(server: Server) -> None:
    """Without limit the answer is the whole thread, oldest first, with next null."""
    await big_post(server)
    ids = await seed(server, 4)
    async with server.client() as client:
        whole = (await client.get("/api/comments", params={"uri": URI})).json()
        sorted_whole = (
            await client.get("/api/comments", params={"uri": URI, "sort": "newest"})
        ).json()
    assert [c["id"] for c in whole["comments"]] == ids and whole["next"] is None
    assert whole["top_level"] == 4 and whole["closed"] is False
    assert [c["id"] for c in sorted_whole["comments"]] == ids[::-1]
    assert sorted_whole["next"] is None


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    existing=st.integers(min_value=0, max_value=12),
    limit=st.integers(min_value=1, max_value=5),
    sort=st.sampled_from(["oldest", "newest", "best"]),
    arrivals=st.lists(st.integers(min_value=0, max_value=3), max_size=8),
    replies=st.booleans(),
)
async def test_following_next_sees_each_existing_comment_once(
    server: Server, existing: int, limit: int, sort: str, arrivals: list[int], replies: bool
) -> None:
    """While comments arrive between page reads, next yields every earlier one exactly once."""
    uri = f"/prop/{next(_unique)}"
    ids = await seed(server, existing, uri=uri) if existing else []
    async with server.client(headers={"Origin": server.settings.public_origin}) as client:
        tops: list[int] = []
        after: str | None = None
        step = 0
        while True:
            params = {"uri": uri, "sort": sort, "limit": str(limit)}
            if after:
                params["after"] = after
            answer = await client.get("/api/comments", params=params)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            tops += [c["id"] for c in page["comments"] if c["parent"] is None]
            for _ in range(arrivals[step] if step < len(arrivals) else 0):
                parent = ids[0] if replies and ids else None
                await post(client, f"new {step}", uri=uri, parent=parent)
                await post(client, f"top {step}", uri=uri)
            step += 1
            after = page["next"]
            if after is None:
                break
    assert len(tops) == len(set(tops)), "a top-level comment came twice"
    assert set(ids) <= set(tops), "a top-level comment that existed was skipped"


async def test_post_page_shows_one_page_and_links_the_next(
    database_url: str, tmp_path: Path
) -> None:
    """Without JavaScript, KIBITZ_PAGE_SIZE top-level comments show with a plain next link."""
    settings = make_settings(database_url, tmp_path, KIBITZ_PAGE_SIZE="3")
    async with serve(settings) as server:
        await big_post(server)
        ids = await seed(server, 7)
        await seed(server, 1, status="pending")
        async with server.client() as client:
            reply = await post(client, "reply on page two", parent=ids[4])
            first = await client.get(URI)
            shown: list[int] = []
            url: str | None = URI
            while url:
                page = await client.get(url)
                assert page.status_code == 200
                shown += [i for i in ids if f'id="comment-{i}"' in page.text]
                found = re.search(r'<a href="([^"]+)" rel="next"', page.text)
                url = html.unescape(found.group(1)) if found else None
            link = await client.get(f"/c/{reply}")
            target = await client.get(link.headers["location"])
            first_link = await client.get(f"/c/{ids[0]}")
            hidden = await client.get(f"/c/{ids[-1] + 1}")
            bad_sort = await client.get(URI, params={"sort": "random"})
            bad_after = await client.get(URI, params={"after": "forged"})
    assert f'id="comment-{ids[3]}"' not in first.text and "Next page of comments" in first.text
    assert shown == ids
    assert link.status_code == 303 and link.headers["location"].endswith(f"#comment-{reply}")
    assert "after=" in link.headers["location"] and "reply on page two" in target.text
    assert first_link.headers["location"] == f"{URI}#comment-{ids[0]}"
    assert hidden.status_code == 404
    assert bad_sort.status_code == 400 and bad_after.status_code == 400


async def test_post_page_order_control(server: Server) -> None:
    """?sort=newest puts the newest first; the order control is a labelled select."""
    await big_post(server)
    ids = await seed(server, 3)
    async with server.client() as client:
        page = (await client.get(URI, params={"sort": "newest"})).text
    assert page.index(f'id="comment-{ids[2]}"') < page.index(f'id="comment-{ids[0]}"')
    assert '<label for="kibitz-sort">' in page and '<option value="newest" selected>' in page
