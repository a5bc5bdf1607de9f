"""Big-thread figures: the first page of a 5,000-comment thread, and votes per second.

    .venv/bin/python bench/bigthreads.py [--comments 5000] [--database-url postgresql://…]
        [--redis-url redis://…] [--votes-seconds 6] [--voters 1000] [--readers 1000]
        [--connections 64] [--transport direct|asgi]

Fills one post's thread with N comments (two thirds top-level, ~300 characters each; a third
replies to earlier top-level ones), then serves it with a real ``kibitz serve`` process (its
live port on, as in production) and measures:

* the post page (HTML) and ``GET /api/comments?limit=50`` (JSON): bytes and median time of
  several reads (the first read warms the caches and is reported apart);
* votes: ``wrk -t1 -c64`` (bench/wrk/vote.lua; ``--connections``) casts votes from
  ``--voters`` voter ids on the thread's first 200 top-level comments for ``--votes-seconds``
  while ``--readers`` live readers (raw websocket clients in a process of their own, on the
  live port or with ``--transport asgi`` on the site's own ``/ws``) count the ``votes``
  messages they get.
  Printed: votes/s, the server's CPU per vote (and, on PostgreSQL, the database backends'),
  the server's resident memory per reader, and how often readers heard.

Then it checks what must hold whatever the speed: every vote answered 200; each comment's
counts equal its stored votes (one row per voter and comment); the API shows those counts;
and the last counts the readers were sent are those counts, in messages that carry counts
only. ``--database-url`` names a PostgreSQL database to connect to: the bench creates a fresh
database beside it and drops it at the end. Without it, SQLite in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench import wrk
from bench.fanout import (
    RawReader,
    Tally,
    fresh_database,
    kibitz_processes,
    open_reader,
    raise_fd_limit,
    rss_kib,
)
from db.comments import NewComment
from db.database import Database, connect
from db.models import now
from server.discussion.markup import render_comment
from server.discussion.votes import Voters
from tests.helpers.servers import make_settings, serve

SECRET = "bench"  # bench.fanout's kibitz_processes signs with this key: voter ids match it
URI = "/posts/big"
VOTED = 200  # votes go to this many top-level comments, the first page's and more
PARSED = 20  # readers that parse every votes message (the others only note the time)

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


# -- live readers: raw websocket clients in a process of their own -----------------------------


class VotesReader(RawReader):
    """Notes when each ``votes`` message came; a few readers also keep the counts sent."""

    def __init__(self, path: str, host: str, tally: Tally, parse: bool) -> None:
        super().__init__(path, host, tally)
        self.times: list[float] = []
        self.counts: dict[str, list[int]] | None = {} if parse else None
        self.foreign: list[str] = []  # votes messages with anything but counts in them

    def text(self, payload: bytes, now: float) -> None:
        if not payload.startswith(b'{"type":"votes"'):
            return
        self.times.append(now)
        if self.counts is None:
            return
        message = json.loads(payload)
        counts = message["votes"]
        if set(message) != {"type", "votes"} or not all(
            isinstance(v, list) and len(v) == 2 and all(type(n) is int for n in v)
            for v in counts.values()
        ):
            self.foreign.append(payload.decode()[:200])
        self.counts.update(counts)


def readers_process(conn: Any, port: int, path: str, count: int) -> None:
    """``count`` readers of the thread; answers with what they heard when told to stop."""
    raise_fd_limit()

    async def main() -> None:
        tally = Tally(count, conn)
        gate = asyncio.Semaphore(64)
        readers: list[VotesReader] = []

        async def open_one(k: int) -> None:
            async with gate:
                host = "127.0.0.1"
                make = functools.partial(VotesReader, path, f"{host}:{port}", tally, k < PARSED)
                readers.append(await open_reader(make, host, port, 120))

        await asyncio.gather(*(open_one(k) for k in range(count)))
        conn.send(("ready", len(readers)))
        while not conn.poll():  # the loop keeps reading meanwhile
            await asyncio.sleep(0.05)
        conn.recv()
        conn.send(
            (
                "heard",
                [r.times for r in readers],
                [r.counts for r in readers if r.counts is not None],
                [f for r in readers for f in r.foreign],
                tally.lost,
            )
        )
        for r in readers:
            if r.transport is not None:
                r.transport.close()

    try:
        asyncio.run(main())
    except Exception as exc:
        conn.send(("failed", repr(exc)))


async def answer(conn: Any, process: multiprocessing.process.BaseProcess) -> Any:
    """The readers' next message, off the loop; their failure is raised here."""
    loop = asyncio.get_running_loop()
    while not await loop.run_in_executor(None, conn.poll, 0.5):
        if not process.is_alive():
            raise RuntimeError("the readers' process died")
    message = conn.recv()
    if message[0] == "failed":
        raise RuntimeError(f"readers failed: {message[1]}")
    return message


# -- what the database holds -------------------------------------------------------------------


async def backend_pids(db: Database) -> set[int]:
    """PostgreSQL's server processes for this database (kibitz's pool), for their CPU time."""
    if db.dialect != "postgres":
        return set()
    async with db.read() as conn:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
    return {r["pid"] for r in rows}


async def stored_counts(
    db: Database,
) -> tuple[dict[int, tuple[int, int]], dict[int, tuple[int, int]]]:
    """Per comment of the thread: the counts on its row, and the counts of its vote rows."""
    async with db.read() as conn:
        kept = await conn.fetch(
            "SELECT c.id, c.up, c.down FROM comments c JOIN threads t ON t.id = c.thread_id "
            "WHERE t.uri = $1",
            URI,
        )
        cast = await conn.fetch(
            "SELECT comment_id, SUM(CASE WHEN value = 1 THEN 1 ELSE 0 END) AS up, "
            "SUM(CASE WHEN value = -1 THEN 1 ELSE 0 END) AS down, COUNT(*) AS n, "
            "COUNT(DISTINCT voter) AS voters FROM votes GROUP BY comment_id"
        )
    assert all(r["n"] == r["voters"] for r in cast), "a voter has two votes on one comment"
    return (
        {r["id"]: (r["up"], r["down"]) for r in kept},
        {r["comment_id"]: (int(r["up"]), int(r["down"])) for r in cast},
    )


async def check(
    db: Database, base: str, heard: list[dict[str, list[int]]], foreign: list[str]
) -> int:
    """Counts exact everywhere a reader can see them; returns how many comments have votes."""
    kept, cast = await stored_counts(db)
    for comment_id, counts in kept.items():
        assert counts == cast.get(comment_id, (0, 0)), (comment_id, counts, cast.get(comment_id))
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        shown = (await client.get("/api/comments", params={"uri": URI})).json()["comments"]
    assert {c["id"]: (c["up"], c["down"]) for c in shown} == kept, "the API shows other counts"
    assert not foreign, f"votes messages with more than counts: {foreign[:3]}"
    for counts in heard:
        told = {int(k): tuple(v) for k, v in counts.items()}
        voted = {k: v for k, v in kept.items() if v != (0, 0)}
        assert told.keys() >= voted.keys(), "a reader never heard of a comment's votes"
        assert {k: kept[k] for k in told} == told, "a reader's last counts are not the stored ones"
    return sum(1 for v in kept.values() if v != (0, 0))


# -- the measures ------------------------------------------------------------------------------


async def pages(base: str, runs: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for name, path in (
            ("post page, first page (HTML)", "/posts/big"),
            ("API first page, limit=50 (JSON)", f"/api/comments?uri={URI}&limit=50"),
            ("API whole thread (JSON)", f"/api/comments?uri={URI}"),
        ):
            size, cold, warm = await timed(client, path, runs)
            print(
                f"  {name:34} {size / 1024:8.1f} KiB   first {cold:7.1f} ms   "
                f"then median {warm:6.1f} ms",
                flush=True,
            )


async def votes(
    args: argparse.Namespace, db: Database, server: Any, port: int, live: int, roots: list[int]
) -> None:
    reader_port = live if args.transport == "direct" else port
    base = f"http://127.0.0.1:{port}"
    before = rss_kib(server.pid)
    ours, theirs = multiprocessing.Pipe()
    readers = multiprocessing.Process(
        target=readers_process,
        args=(theirs, reader_port, f"/ws?uri={URI}", args.readers),
        daemon=True,
    )
    readers.start()
    _, opened = await answer(ours, readers)
    await asyncio.sleep(2.5)  # presence settles (at most one message a second)
    per_reader = (rss_kib(server.pid) - before) / max(1, opened)

    signer = Voters(SECRET)
    plan = Path(args.tmp) / "votes.txt"
    plan.write_text(
        " ".join(str(r) for r in roots[:VOTED])
        + "\n"
        + "".join(signer.issue() + "\n" for _ in range(args.voters))
    )
    pids = await backend_pids(db)
    database_before = {pid: wrk.cpu_seconds(pid) for pid in pids}
    server_before = wrk.cpu_seconds(server.pid)
    command = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.votes_seconds:g}s"]
    command += ["--timeout", "10s", "-s", str(wrk.SCRIPTS / "vote.lua"), base, "--", str(plan)]
    done = await asyncio.to_thread(
        subprocess.run, [*command, str(random.randrange(1 << 30))], capture_output=True, text=True
    )
    server_cpu = wrk.cpu_seconds(server.pid) - server_before
    pids |= await backend_pids(db)
    database_cpu = sum(wrk.cpu_seconds(pid) - database_before.get(pid, 0.0) for pid in pids)
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit(f"wrk failed:\n{done.stdout}{done.stderr}")
    run = json.loads(done.stdout.strip().splitlines()[-1])
    await asyncio.sleep(2.0)  # the last votes message (at most a second later) arrives
    ours.send("stop")
    _, heard, counts, foreign, lost = await answer(ours, readers)
    readers.join(30)

    assert run["failed"] == 0, f"{run['failed']} votes were not answered 200"
    voted = await check(db, base, counts, foreign)
    per = [len(t) for t in heard]
    gaps = [b - a for t in heard for a, b in itertools.pairwise(t)]
    cast = run["requests"]
    database = f", PostgreSQL backends {database_cpu * 1000 / cast:.2f} ms" if pids else ""
    print(
        f"votes: {cast} in {run['seconds']:.1f} s = {cast / run['seconds']:.0f}/s (p50 "
        f"{run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms; wrk -c{args.connections}) from "
        f"{args.voters} voters on {voted} comments; CPU per vote: server "
        f"{server_cpu * 1000 / cast:.2f} ms{database}\n"
        f"  {opened} readers ({args.transport}) got {min(per)}-{max(per)} votes messages each "
        f"in {run['seconds'] + 2:.1f} s (smallest gap as received {min(gaps, default=0):.2f} s); "
        f"{lost} disconnected; server memory {per_reader:.1f} KiB per reader\n"
        f"  checked: every vote 200; counts equal the stored votes, in the API and in the "
        f"last votes message {len(counts)} readers parsed",
        flush=True,
    )


@contextlib.asynccontextmanager
async def database(base: str, tmp: str) -> AsyncIterator[str]:
    if not base:
        yield f"sqlite:///{Path(tmp) / 'k.db'}"
        return
    async with fresh_database(base) as url:
        yield url


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=5000)
    parser.add_argument("--database-url", default="", help="PostgreSQL; default SQLite")
    parser.add_argument("--redis-url", default="", help="default: in-process fan-out")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--votes-seconds", type=float, default=6)
    parser.add_argument("--voters", type=int, default=1000)
    parser.add_argument("--readers", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=64, help="votes in flight (wrk -c)")
    parser.add_argument("--transport", choices=("direct", "asgi"), default="direct")
    args = parser.parse_args()
    raise_fd_limit()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        async with database(args.database_url, tmp) as url:
            async with serve(make_settings(url, Path(tmp))) as filling:
                began = time.perf_counter()
                roots = await fill(filling, args.comments)
            print(
                f"{args.comments} comments ({len(roots)} top-level) on {url.split(':')[0]} "
                f"in {time.perf_counter() - began:.1f} s",
                flush=True,
            )
            extra = {"KIBITZ_VOTE_RATE": "off", "KIBITZ_VOTER_RATE": "off"}
            with kibitz_processes(url, args.redis_url, 1, extra) as [(server, port, live)]:
                await pages(f"http://127.0.0.1:{port}", args.runs)
                if args.votes_seconds > 0:
                    db = await connect(url)
                    try:
                        await votes(args, db, server, port, live, roots)
                    finally:
                        await db.close()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
