"""Votes and closing across two processes through real Redis and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.live import pair, post, reader, staff_token, ws_base
from tests.helpers.posts import add_post

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_votes_and_closing_reach_readers_of_the_other_process(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """A vote and a close on one server reach a reader on the other, coalesced and ordered."""
    async with pair(pg_url, redis_url, tmp_path) as (one, two):
        uri = (await add_post(one, "shared")).uri
        comment = await post(one, uri)
        token = await staff_token(one)
        async with reader(ws_base(two, "asgi"), uri) as far, one.client() as client:
            voters = [(await client.post("/api/voters")).json()["voter"] for _ in range(3)]
            for v in voters:
                answer = await client.post(
                    f"/api/comments/{comment['id']}/vote", json={"value": 1, "voter": v}
                )
                assert answer.status_code == 200
            seen: dict[str, list[int]] = {}
            while seen.get(str(comment["id"])) != [3, 0]:
                message = await far.next(timeout=5)
                assert message["type"] == "votes", message
                seen.update(message["votes"])
            await client.post(
                "/api/threads/close",
                params={"uri": uri},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert await far.next() == {"type": "thread.closed", "seq": 2}
        async with two.client() as other:
            refused = await other.post(
                "/api/comments",
                json={"uri": uri, "author": "A", "email": "a@b.cd", "text": "late"},
            )
            page = (await other.get("/api/comments", params={"uri": uri, "limit": "10"})).json()
    assert refused.status_code == 403
    assert page["closed"] is True and page["comments"][0]["up"] == 3
