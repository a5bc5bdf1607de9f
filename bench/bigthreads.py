"""Big-thread figures: the first page of a 5,000-comment thread, and votes per second.

    .venv/bin/python bench/bigthreads.py [--comments 5000] [--database-url postgresql://…]
        [--votes-seconds 5] [--voters 40] [--readers 50]

Starts kibitz on a free port with one post whose thread has N comments (two thirds top-level,
~300 characters each; a third replies to earlier top-level ones), then measures:

* the post page (HTML) and ``GET /api/comments?limit=50`` (JSON): bytes and median time of
  several reads (the first read warms the caches and is reported apart);
* votes: ``--voters`` concurrent clients voting for ``--votes-seconds`` on that one thread
  while ``--readers`` live readers count the ``votes`` messages they get per second.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from websockets.asyncio.client import connect

from db.comments import NewComment
from db.models import now
from server.discussion.markup import render_comment
from tests.helpers.servers import make_settings, serve

WORDS = (
    "thread comment reply page order vote reader writer time people city river light idea "
    "question answer small large early late open closed pinned best newest oldest"
).split()


def text(i: int) -> str:
    rng = random.Random(i)
    words = []
    while len(" ".join(words)) < 290:
        words.append(rng.choice(WORDS))
    return f"Comment {i}: " + " ".join(words) + "."


async def fill(server, comments: int) -> list[int]:  # type: ignore[no-untyped-def]
    state = server.state
    await state.posts.add(slug="big", title="A big thread", author="Ada", body_html="<p>Hi</p>")
    start = now() - timedelta(days=3)
    tops = comments * 2 // 3
    roots: list[int] = []
    for chunk in range(0, tops, 500):
        batch = [
            NewComment(
                author=f"Reader {i % 97}",
                email=f"r{i % 97}@example.org",
                website=None,
                text=text(i),
                html=render_comment(text(i)),
                status="approved",
                created=start + timedelta(seconds=30 * i),
            )
            for i in range(chunk, min(tops, chunk + 500))
        ]
        roots += await state.comments.add_many("/posts/big", batch)
    rng = random.Random(7)

    async def reply(i: int) -> None:
        parent = roots[rng.randrange(len(roots))]
        await state.comments.add(
            "/posts/big",
            NewComment(
                author=f"Reader {i % 97}",
                email=f"r{i % 97}@example.org",
                website=None,
                text=text(i),
                html=render_comment(text(i)),
                status="approved",
                parent_id=parent,
            ),
            create_thread=False,
        )

    for chunk in range(tops, comments, 200):
        await asyncio.gather(*(reply(i) for i in range(chunk, min(comments, chunk + 200))))
    return roots


async def timed(client: httpx.AsyncClient, url: str, runs: int) -> tuple[int, float, float]:
    first = time.perf_counter()
    response = await client.get(url)
    cold = (time.perf_counter() - first) * 1000
    assert response.status_code == 200, response.text[:200]
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await client.get(url)
        times.append((time.perf_counter() - began) * 1000)
    return len(response.content), cold, statistics.median(times)


def readers_process(conn: Any, url: str, count: int, seconds: float) -> None:
    """A separate process with ``count`` live readers: the server's loop is not theirs."""

    async def main() -> None:
        received: list[list[float]] = [[] for _ in range(count)]
        opened = 0

        async def read(k: int) -> None:
            nonlocal opened
            async with connect(url, compression=None, open_timeout=60) as ws:
                opened += 1
                async for raw in ws:  # cancelled at the end
                    if b'"votes"' in (raw if isinstance(raw, bytes) else raw.encode()[:20]):
                        received[k].append(time.monotonic())

        tasks = [asyncio.create_task(read(k)) for k in range(count)]
        while opened < count:
            await asyncio.sleep(0.1)
        conn.send("open")
        # the voting is over (waited for off the loop, so the readers keep reading)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await asyncio.sleep(1.5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        conn.send(received)

    asyncio.run(main())


def voters_process(
    conn: Any, base: str, voters: list[str], roots: list[int], seconds: float
) -> None:
    """Voters in a process of their own, so the server's process only serves."""

    async def main() -> None:
        cast = 0
        limits = httpx.Limits(max_connections=len(voters))
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
            conn.send("ready")
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)
            deadline = time.monotonic() + seconds

            async def voter(v: str) -> None:
                nonlocal cast
                rng = random.Random(v)
                while time.monotonic() < deadline:
                    target = roots[rng.randrange(min(200, len(roots)))]
                    answer = await client.post(
                        f"/api/comments/{target}/vote",
                        json={"value": rng.choice((1, -1)), "voter": v},
                    )
                    assert answer.status_code == 200, answer.text
                    cast += 1

            began = time.monotonic()
            await asyncio.gather(*(voter(v) for v in voters))
            conn.send((cast, time.monotonic() - began))

    asyncio.run(main())


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def votes(server, roots: list[int], seconds: float, voters: int, readers: int) -> None:  # type: ignore[no-untyped-def]
    url = server.url.replace("http://", "ws://") + "/ws?uri=/posts/big"
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=readers_process, args=(theirs, url, readers, seconds)
    )
    before = rss_kib()
    child.start()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, ours.recv)  # every reader is connected
    await asyncio.sleep(1)
    per_reader_kib = (rss_kib() - before) / max(1, readers)
    ids = [server.state.votes.voters.issue() for _ in range(voters)]
    mine, child_end = multiprocessing.get_context("spawn").Pipe()
    casting = multiprocessing.get_context("spawn").Process(
        target=voters_process, args=(child_end, server.url, ids, roots, seconds)
    )
    casting.start()
    await loop.run_in_executor(None, mine.recv)  # the voters' client is up
    mine.send("go")
    cast, elapsed = await loop.run_in_executor(None, mine.recv)
    casting.join(30)
    ours.send("done")
    received: list[list[float]] = await loop.run_in_executor(None, ours.recv)
    child.join(30)
    gaps = [b - a for r in received for a, b in itertools.pairwise(r)]
    per_reader = [len(r) for r in received]
    print(
        f"votes: {cast} in {elapsed:.1f} s = {cast / elapsed:.0f}/s from {voters} voters; "
        f"{readers} readers (another process) got {min(per_reader)}-{max(per_reader)} votes "
        f"messages each in {elapsed + 1.5:.1f} s (smallest gap as received "
        f"{min(gaps) if gaps else 0:.2f} s); server memory "
        f"{per_reader_kib:.1f} KiB per reader"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=5000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--votes-seconds", type=float, default=5)
    parser.add_argument("--voters", type=int, default=40)
    parser.add_argument("--readers", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'k.db'}"
        settings = make_settings(url, Path(tmp), KIBITZ_VOTE_RATE="off", KIBITZ_VOTER_RATE="off")
        async with serve(settings) as server:
            began = time.perf_counter()
            roots = await fill(server, args.comments)
            print(
                f"{args.comments} comments ({len(roots)} top-level) on {url.split(':')[0]} "
                f"in {time.perf_counter() - began:.1f} s"
            )
            async with server.client() as client:
                for name, path in (
                    ("post page, first page (HTML)", "/posts/big"),
                    ("API first page, limit=50 (JSON)", "/api/comments?uri=/posts/big&limit=50"),
                    ("API whole thread (JSON)", "/api/comments?uri=/posts/big"),
                ):
                    size, cold, warm = await timed(client, path, args.runs)
                    print(
                        f"  {name:34} {size / 1024:8.1f} KiB   first {cold:7.1f} ms   "
                        f"then median {warm:6.1f} ms"
                    )
            if args.votes_seconds > 0:
                await votes(server, roots, args.votes_seconds, args.voters, args.readers)


if __name__ == "__main__":
    asyncio.run(main())
