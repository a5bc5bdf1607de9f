"""Votes through a real server, on SQLite and PostgreSQL: ids, counts, modes, limits, live."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

from tests.helpers.live import post, reader, staff_token, ws_base
from tests.helpers.posts import add_post
from tests.helpers.servers import Server, make_settings, serve
from tests.helpers.sso import SECRET, tampered, token


async def voter(server: Server) -> str:
    async with server.client() as client:
        answer = await client.post("/api/voters")
    assert answer.status_code == 201, answer.text
    return str(answer.json()["voter"])


async def test_one_vote_per_voter_changeable(server: Server) -> None:
    """A voter's vote counts once, can change and be withdrawn; counts show in the thread."""
    uri = (await add_post(server, "hello")).uri
    comment = await post(server, uri)
    a, b = await voter(server), await voter(server)
    url = f"/api/comments/{comment['id']}/vote"
    async with server.client() as client:
        first = await client.post(url, json={"value": 1, "voter": a})
        twice = await client.post(url, json={"value": 1, "voter": a})
        other = await client.post(url, json={"value": -1, "voter": b})
        changed = await client.post(url, json={"value": -1, "voter": a})
        thread = (await client.get("/api/comments", params={"uri": uri})).json()
        withdrawn = await client.post(url, json={"value": 0, "voter": a})
        again = (await client.get("/api/comments", params={"uri": uri})).json()
    assert first.json() == {"id": comment["id"], "up": 1, "down": 0, "mine": 1}
    assert twice.json() == {"id": comment["id"], "up": 1, "down": 0, "mine": 1}
    assert other.json() == {"id": comment["id"], "up": 1, "down": 1, "mine": -1}
    assert changed.json() == {"id": comment["id"], "up": 0, "down": 2, "mine": -1}
    assert (thread["comments"][0]["up"], thread["comments"][0]["down"]) == (0, 2)
    assert withdrawn.json() == {"id": comment["id"], "up": 0, "down": 1, "mine": 0}
    assert again["comments"][0]["down"] == 1  # the cached read follows the votes
    assert a not in str(thread) and a.split(".")[0] not in str(thread)


async def test_a_signed_in_user_votes_once_from_any_browser(
    database_url: str, tmp_path: Path
) -> None:
    """With "sso", the site's user is the voter: two browsers, one vote; a forged token is 401."""
    settings = make_settings(database_url, tmp_path, KIBITZ_SSO_SECRET=SECRET)
    async with serve(settings) as running:
        uri = (await add_post(running, "hello")).uri
        comment = await post(running, uri)
        url = f"/api/comments/{comment['id']}/vote"
        async with running.client() as client:
            first = await client.post(url, json={"value": 1, "sso": token()})
            elsewhere = await client.post(url, json={"value": 1, "sso": token()})
            other = await client.post(url, json={"value": -1, "sso": token(sub="user-7")})
            forged = await client.post(url, json={"value": 1, "sso": tampered()})
            empty = await client.post(url, json={"value": 1, "sso": ""})
    assert first.json() == {"id": comment["id"], "up": 1, "down": 0, "mine": 1}
    assert elsewhere.json() == {"id": comment["id"], "up": 1, "down": 0, "mine": 1}
    assert other.json() == {"id": comment["id"], "up": 1, "down": 1, "mine": -1}
    assert (forged.status_code, empty.status_code) == (401, 401)
    assert "error" in forged.json()


async def test_bad_votes_get_clear_4xx(server: Server) -> None:
    """Bad values are 422, missing or forged voters 401, hidden or unknown comments 404."""
    uri = (await add_post(server, "hello")).uri
    comment = await post(server, uri)
    good = await voter(server)
    url = f"/api/comments/{comment['id']}/vote"
    async with server.client() as client:
        answers = {
            422: [
                await client.post(url, json={"value": 2, "voter": good}),
                await client.post(url, json={"value": "1", "voter": good}),
                await client.post(url, json={"value": True, "voter": good}),
                await client.post(url, json={"voter": good}),
            ],
            401: [
                await client.post(url, json={"value": 1}),
                await client.post(url, json={"value": 1, "voter": good[:-3] + "abc"}),
                await client.post(url, json={"value": 1, "voter": 12}),
            ],
            404: [await client.post("/api/comments/999999/vote", json={"value": 1, "voter": good})],
            400: [
                await client.post(url, content=b"{", headers={"content-type": "application/json"})
            ],
        }
    for status, found in answers.items():
        for answer in found:
            assert answer.status_code == status, (status, answer.text)
            assert answer.json()["error"]


async def test_hidden_comments_take_no_votes(database_url: str, tmp_path: Path) -> None:
    """A pending or deleted comment is 404 to voters, and nothing about it is revealed."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")) as server:
        uri = (await add_post(server, "hello")).uri
        held = await post(server, uri, text="held words")
        good = await voter(server)
        async with server.client() as client:
            answer = await client.post(
                f"/api/comments/{held['id']}/vote", json={"value": 1, "voter": good}
            )
    assert answer.status_code == 404 and "held words" not in answer.text


async def test_vote_modes(database_url: str, tmp_path: Path) -> None:
    """KIBITZ_VOTES=up refuses -1 with 422; off refuses voting and voter ids with 403."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_VOTES="up")) as server:
        uri = (await add_post(server, "hello")).uri
        comment = await post(server, uri)
        good = await voter(server)
        async with server.client() as client:
            url = f"/api/comments/{comment['id']}/vote"
            down = await client.post(url, json={"value": -1, "voter": good})
            like = await client.post(url, json={"value": 1, "voter": good})
    assert down.status_code == 422 and down.json()["fields"]["value"]
    assert like.status_code == 200
    async with serve(make_settings(database_url, tmp_path, KIBITZ_VOTES="off")) as server:
        async with server.client() as client:
            ids = await client.post("/api/voters")
            vote = await client.post(
                f"/api/comments/{comment['id']}/vote", json={"value": 1, "voter": good}
            )
    assert ids.status_code == 403 and vote.status_code == 403


async def test_voter_ids_are_rate_limited(database_url: str, tmp_path: Path) -> None:
    """One address gets KIBITZ_VOTER_RATE voter ids, then 429 with Retry-After."""
    settings = make_settings(database_url, tmp_path, KIBITZ_VOTER_RATE="2/minute")
    async with serve(settings) as server, server.client() as client:
        answers = [await client.post("/api/voters") for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert answers[2].headers["Retry-After"] and answers[2].json()["error"]


async def test_votes_go_live_at_most_once_a_second(server: Server) -> None:
    """Votes cast over ~2 s reach readers as a few coalesced messages with the latest counts."""
    uri = (await add_post(server, "hello")).uri
    one, two = await post(server, uri), await post(server, uri)
    voters = [await voter(server) for _ in range(8)]  # within KIBITZ_VOTER_RATE
    async with reader(ws_base(server, "asgi"), uri) as live, server.client() as client:

        async def cast() -> None:
            for i, v in enumerate(voters):  # one vote every 0.3 s for 2.4 s
                target = one if i % 2 else two
                url = f"/api/comments/{target['id']}/vote"
                assert (await client.post(url, json={"value": 1, "voter": v})).status_code == 200
                await asyncio.sleep(0.3)

        casting = asyncio.create_task(cast())
        messages, times = [], []
        began = time.monotonic()
        deadline = began + 5
        while time.monotonic() < deadline:
            try:
                message = await live.next(max(0.05, deadline - time.monotonic()))
            except TimeoutError:
                break
            assert message["type"] == "votes"
            messages.append(message["votes"])
            times.append(time.monotonic())
        await casting
    merged: dict[str, list[int]] = {}
    for m in messages:
        merged.update(m)
    assert merged == {str(one["id"]): [4, 0], str(two["id"]): [4, 0]}
    # 8 votes in ~2.4 s: one message per second at most (plus delivery jitter on a busy box)
    assert 2 <= len(messages) <= 1 + int(times[-1] - times[0]) + 1, times
    assert all(b - a >= 0.75 for a, b in itertools.pairwise(times)), times


async def test_ids_out_of_range_or_not_numbers_are_404(server: Server) -> None:
    """Vote and pin on ids that cannot exist answer 404 with the error shape, never 500."""
    good = await voter(server)
    auth = {"Authorization": f"Bearer {await staff_token(server)}"}
    async with server.client() as client:
        answers = [
            await client.post(f"/api/comments/{2**64}/vote", json={"value": 1, "voter": good}),
            await client.post("/api/comments/abc/vote", json={"value": 1, "voter": good}),
            await client.post(f"/api/comments/{2**70}/pin", headers=auth),
            await client.get(f"/c/{2**64}"),
        ]
    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert all("error" in a.json() for a in answers[:3])


async def test_concurrent_votes_keep_counts_exact(database_url: str, tmp_path: Path) -> None:
    """Many voters voting and changing their votes at once: counts equal the stored votes."""
    settings = make_settings(
        database_url, tmp_path, KIBITZ_VOTE_RATE="off", KIBITZ_VOTER_RATE="off"
    )
    async with serve(settings) as server:
        uri = (await add_post(server, "hello")).uri
        comments = [await post(server, uri), await post(server, uri)]
        voters = [await voter(server) for _ in range(20)]
        async with server.client() as client:

            async def cast(v: str, comment: dict[str, object], value: int) -> None:
                url = f"/api/comments/{comment['id']}/vote"
                answer = await client.post(url, json={"value": value, "voter": v})
                assert answer.status_code == 200, answer.text

            await asyncio.gather(
                *(cast(v, c, 1) for v in voters for c in comments),
                *(cast(v, comments[0], -1) for v in voters[:10]),
                *(cast(v, comments[1], 0) for v in voters[10:15]),
            )
            thread = (await client.get("/api/comments", params={"uri": uri, "limit": "5"})).json()
        async with server.state.db.read() as conn:
            rows = await conn.fetch(
                "SELECT comment_id, value, COUNT(*) AS n FROM votes GROUP BY comment_id, value"
            )
    stored = {(r["comment_id"], r["value"]): r["n"] for r in rows}
    for shown in thread["comments"]:
        assert shown["up"] == stored.get((shown["id"], 1), 0)
        assert shown["down"] == stored.get((shown["id"], -1), 0)
    assert sum(stored.values()) >= 30  # every voter's last word counts once per comment
