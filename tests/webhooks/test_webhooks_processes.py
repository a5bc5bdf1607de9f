"""Webhooks across processes on PostgreSQL: each event reaches each endpoint once, not once
per process, and in the thread's commit order."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from db.database import connect
from db.posts import PostStore
from db.staff import StaffStore
from server.auth.credentials import hash_password, new_api_token
from tests.helpers.servers import start_process, stop_process
from tests.helpers.webhooks import Receiver, wait_for

pytestmark = [pytest.mark.postgres]


async def prepare(pg_url: str) -> str:
    """Two posts and a staff token, straight into the shared database."""
    db = await connect(pg_url)
    try:
        for slug in ("one", "two"):
            await PostStore(db).add(slug=slug, title=slug, author="A", body_html="<p>x</p>")
        member = await StaffStore(db).add("ops", "admin", hash_password("long-password"))
        token = new_api_token()
        await StaffStore(db).add_token(member.id, token)
    finally:
        await db.close()
    return token


async def commit_order(pg_url: str) -> dict[str, list[int]]:
    """Each thread's comments in the order their transactions committed (the events' seq)."""
    db = await connect(pg_url)
    try:
        async with db.read() as conn:
            rows = await conn.fetch(
                "SELECT t.uri, e.comment_id FROM events e JOIN threads t ON t.id = e.thread_id "
                "WHERE e.type = 'comment.created' ORDER BY e.thread_id, e.seq"
            )
    finally:
        await db.close()
    order: dict[str, list[int]] = {}
    for row in rows:
        order.setdefault(row["uri"], []).append(row["comment_id"])
    return order


async def test_two_processes_deliver_each_event_once_in_commit_order(
    pg_url: str, tmp_path: Path
) -> None:
    """Comments posted concurrently to two servers on one database: every event arrives at
    each of two endpoints exactly once, verified, and per thread in commit order."""
    token = await prepare(pg_url)
    env = {
        "KIBITZ_DATABASE_URL": pg_url,
        "KIBITZ_DATA_DIR": str(tmp_path),
        "KIBITZ_SECRET_KEY": "webhook-processes",
        "KIBITZ_MODERATION": "none",
        "KIBITZ_POST_RATE": "off",
        "KIBITZ_MIN_FILL_SECONDS": "0",
        "KIBITZ_DUPLICATE_WINDOW": "0",
        "KIBITZ_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    first, second = Receiver(), Receiver()
    procs = [start_process(env), start_process(env)]
    try:
        async with first.running(), second.running():
            auth = {"authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(base_url=procs[0].url, headers=auth) as client:
                for receiver in (first, second):
                    made = await client.post(
                        "/api/webhooks", json={"url": receiver.url, "events": ["comment.created"]}
                    )
                    assert made.status_code == 201, made.text
                    receiver.secrets = [made.json()["secret"]]

            async def post(n: int) -> None:
                proc = procs[n % 2]
                uri = "/posts/one" if n % 3 else "/posts/two"
                async with httpx.AsyncClient(base_url=proc.url, timeout=30) as client:
                    response = await client.post(
                        "/api/comments",
                        json={"uri": uri, "author": "A", "email": "a@x.org", "text": f"n{n}"},
                    )
                    assert response.status_code == 201, response.text

            await asyncio.gather(*(post(n) for n in range(40)))
            await wait_for(lambda: len(first.received) >= 40 and len(second.received) >= 40, 30)
            await asyncio.sleep(1.0)  # a duplicate would arrive now
    finally:
        outputs = [stop_process(p) for p in procs]
    order = await commit_order(pg_url)
    assert sum(len(v) for v in order.values()) == 40, outputs
    for receiver in (first, second):
        bodies = receiver.verified()
        ids = Counter(r.headers["webhook-id"] for r in receiver.received)
        assert len(ids) == 40 and set(ids.values()) == {1}
        seen: dict[str, list[int]] = {}
        for body in bodies:
            seen.setdefault(body["data"]["uri"], []).append(body["data"]["comment"]["id"])
        assert seen == order
