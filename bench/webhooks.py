"""Measure webhook delivery: latency from commit to receiver, and throughput with 3 endpoints.

    .venv/bin/python bench/webhooks.py [sqlite|postgres] [comments] [seconds]

Latency: ``comments`` comments posted one after another; for each, the time from the POST's
answer (the comment is committed) to the receiver getting the signed message, and from the
moment the POST was sent. Throughput: 16 posters for ``seconds`` against 3 endpoints; posts/s,
deliveries/s and how long after the last POST the queue was empty. Server, receiver and
clients share one process and one event loop on loopback, so the figures are conservative.
PostgreSQL needs KIBITZ_TEST_DATABASE_URL (a fresh database is made and dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.auth.credentials import hash_password, new_api_token
from tests.helpers.servers import drop_pg_database, make_settings, new_pg_database, serve
from tests.helpers.webhooks import Receiver, wait_for


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def run(database_url: str, comments: int, seconds: float) -> None:
    settings = make_settings(
        database_url, Path(tempfile.mkdtemp()), KIBITZ_WEBHOOK_ALLOW_PRIVATE="true"
    )
    receivers = [Receiver(), Receiver(), Receiver()]
    async with serve(settings) as server, contextlib.AsyncExitStack() as stack:
        for r in receivers:
            await stack.enter_async_context(r.running())
        await server.state.posts.add(slug="b", title="B", author="A", body_html="<p>x</p>")
        member = await server.state.staff.add("ops", "admin", hash_password("long-password"))
        token = new_api_token()
        await server.state.staff.add_token(member.id, token)
        auth = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=server.url, headers=auth, timeout=30) as client:
            made = await client.post(
                "/api/webhooks", json={"url": receivers[0].url, "events": ["comment.created"]}
            )
            assert made.status_code == 201
            body = {"uri": "/posts/b", "author": "A", "email": "a@x.org", "text": "hello"}
            from_answer, from_send = [], []
            for n in range(comments):
                sent = time.monotonic()
                r = await client.post("/api/comments", json={**body, "text": f"c{n}"})
                answered = time.monotonic()
                assert r.status_code == 201
                await wait_for(lambda n=n: len(receivers[0].received) > n, 10)
                arrived = receivers[0].received[n].at
                from_answer.append((arrived - answered) * 1000)
                from_send.append((arrived - sent) * 1000)
            print(
                f"latency over {comments} comments (ms): from the POST's answer "
                f"p50 {statistics.median(from_answer):.1f} p99 {pct(from_answer, 0.99):.1f}; "
                f"from sending the POST p50 {statistics.median(from_send):.1f} "
                f"p99 {pct(from_send, 0.99):.1f}"
            )
            for r in receivers[1:]:
                made = await client.post(
                    "/api/webhooks", json={"url": r.url, "events": ["comment.created"]}
                )
                assert made.status_code == 201
            base = [len(r.received) for r in receivers]
            posted = 0
            deadline = time.monotonic() + seconds

            async def poster() -> None:
                nonlocal posted
                while time.monotonic() < deadline:
                    r = await client.post("/api/comments", json=body)
                    assert r.status_code == 201
                    posted += 1

            started = time.monotonic()
            await asyncio.gather(*(poster() for _ in range(16)))
            ended = time.monotonic()
            await wait_for(
                lambda: all(
                    len(r.received) - b >= posted for r, b in zip(receivers, base, strict=True)
                ),
                120,
            )
            drained = time.monotonic()
            delivered = sum(len(r.received) - b for r, b in zip(receivers, base, strict=True))
            print(
                f"throughput, 3 endpoints, 16 posters for {ended - started:.1f} s: "
                f"{posted / (ended - started):.0f} posts/s, {delivered} deliveries, "
                f"{delivered / (drained - started):.0f} deliveries/s, "
                f"queue empty {drained - ended:.2f} s after the last POST"
            )


async def main(backend: str, comments: int, seconds: float) -> None:
    if backend == "postgres":
        url = await new_pg_database()
        try:
            await run(url, comments, seconds)
        finally:
            await drop_pg_database(url)
    else:
        await run(f"sqlite:///{tempfile.mkdtemp()}/bench.db", comments, seconds)


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            args[0] if args else "sqlite",
            int(args[1]) if len(args) > 1 else 200,
            float(args[2]) if len(args) > 2 else 10.0,
        )
    )
