"""Where the time of one POST goes: each stage's wall time and the round trips it makes.

    .venv/bin/python bench/post_breakdown.py [--postgres] [--source DIR] [--posts 200] [--warm 500]

Runs kibitz in this process on a fresh database (SQLite; with ``--postgres``, PostgreSQL
and Redis from KIBITZ_BENCH_POSTGRES and KIBITZ_BENCH_REDIS as for bench/wrk.py) with
default settings (the per-address rate limit and the duplicate window on, moderation off),
seeds a 5,000-comment thread and 100 small ones, then posts ``--warm`` comments spread over
the small threads, each from its own client address (what an hour of a busy site leaves in
the rate-limit store), and measures ``--posts`` comments to the big thread and as many to a
new thread, one at a time. Each stage is timed by wrapping the function that does it; "HTTP
and the rest" is the request's time as the client saw it minus the stages. With
``--postgres`` it also counts the statements sent to PostgreSQL and the commands sent to
Redis per POST: each is a round trip.

``--source DIR`` measures the kibitz at DIR instead (a checkout of an older commit), so the
same script shows before and after; a stage an older commit does not have is left out.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# (label, where the stage's function may be, newest first: older commits named it otherwise)
STAGES: list[tuple[str, list[tuple[str, str]]]] = [
    ("rate limit", [("server.discussion.actions", "Discussion._limit")]),
    (
        "checks before the insert (duplicate, ban, staff, first-time)",
        [
            ("server.discussion.actions", "Discussion._screen"),
            ("server.discussion.actions", "recent_duplicate"),
            ("server.discussion.actions", "find_ban"),
        ],
    ),
    ("sanitising", [("server.discussion.actions", "render_comment")]),
    ("moderation decision", [("server.discussion.actions", "Discussion._decide")]),
    ("insert and commit", [("db.comments", "CommentStore.add")]),
    ("shaping and publishing the event", [("realtime.publisher", "Live.on_events")]),
]

# Each call is one round trip: asyncpg's statements (a transaction's BEGIN and COMMIT go
# through execute) and redis-py's commands (the rate limit's script, a publish).
ROUND_TRIPS = [
    ("PostgreSQL", "asyncpg.connection", "Connection." + name)
    for name in ("fetch", "fetchrow", "fetchval", "execute", "executemany")
] + [("Redis", "redis.asyncio.client", "Redis.execute_command")]


def wrap(spent: dict[str, float], label: str, module: Any, dotted: str) -> bool:
    """Time ``module.dotted`` under ``label``; False when this kibitz has no such function."""
    owner: Any = module
    *path, name = dotted.split(".")
    for part in path:
        owner = getattr(owner, part, None)
    original = getattr(owner, name, None)
    if original is None:
        return False
    wrapper: Callable[..., Any]
    if asyncio.iscoroutinefunction(original):

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - started

    else:

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - started

    setattr(owner, name, wrapper)
    return True


def count(calls: dict[str, int], label: str, module: Any, dotted: str) -> None:
    owner_name, name = dotted.split(".")
    owner = getattr(module, owner_name)
    original = getattr(owner, name)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls[label] += 1
        return await original(*args, **kwargs)

    setattr(owner, name, counted)


async def measure(source: Path, posts: int, warm: int, postgres: bool) -> None:
    import importlib

    from bench.servers import POSTGRES, REDIS, pg_run, seed_with, with_database
    from tests.helpers.servers import make_settings

    spent: dict[str, float] = defaultdict(float)
    stages = [
        label
        for label, places in STAGES
        if any([wrap(spent, label, importlib.import_module(m), f) for m, f in places])
    ]
    calls: dict[str, int] = defaultdict(int)
    for label, module, dotted in ROUND_TRIPS if postgres else []:
        count(calls, label, importlib.import_module(module), dotted)
    work = Path(tempfile.mkdtemp(prefix="kibitz-breakdown-"))
    env = {}
    database = ""
    if postgres:
        database = f"kibitz_breakdown_{uuid.uuid4().hex[:8]}"
        await pg_run(POSTGRES, f'CREATE DATABASE "{database}"')
        url = with_database(POSTGRES, database)
        env = {"KIBITZ_REDIS_URL": REDIS, "KIBITZ_REDIS_PREFIX": database}
    else:
        url = f"sqlite:///{work / 'kibitz.db'}"
    threads = {"/bench/t5000": 5000, **{f"/bench/p-{i}": 10 for i in range(100)}}
    seed_with(source, url, threads, [])
    settings = make_settings(
        url,
        work,
        KIBITZ_POST_RATE="5/minute;30/hour",
        KIBITZ_DUPLICATE_WINDOW="600",
        KIBITZ_TRUSTED_PROXIES="127.0.0.1",
        **env,
    )
    try:
        await posting(settings, posts, warm, spent, stages, calls)
    finally:
        if database:
            await pg_run(POSTGRES, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def posting(
    settings: Any,
    posts: int,
    warm: int,
    spent: dict[str, float],
    stages: list[str],
    calls: dict[str, int],
) -> None:
    import httpx

    from tests.helpers.servers import serve

    async with serve(settings) as server, httpx.AsyncClient(base_url=server.url) as client:
        counter = 0

        async def post(uri: str) -> float:
            nonlocal counter
            counter += 1
            n = counter
            body = {
                "uri": uri,
                "author": f"Reader {n}",
                "email": f"reader{n}@example.org",
                "text": f"Comment {n}: I read this twice and *mostly* agree.\n\n> measure first"
                f"\n\nSee https://example.com/notes/{n} on caching.\n\n- round trips\n"
                "- sanitising\n- publishing\n\nThanks for writing it up, **really** useful.",
            }
            headers = {
                "Origin": server.url,
                "X-Forwarded-For": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}",
            }
            started = time.perf_counter()
            response = await client.post("/api/comments", json=body, headers=headers)
            elapsed = time.perf_counter() - started
            assert response.status_code == 201, response.text
            return elapsed

        for i in range(warm):
            await post(f"/bench/p-{i % 100}")
        for target in ("/bench/t5000", "/bench/new"):
            spent.clear()
            calls.clear()
            total = sum([await post(target) for _ in range(posts)])
            print(f"\n{posts} POSTs to {target}, one at a time: {total * 1000 / posts:.2f} ms each")
            print("| stage | ms per POST |\n| --- | ---: |")
            for label in stages:
                print(f"| {label} | {spent[label] * 1000 / posts:.2f} |")
            rest = total - sum(spent.values())
            print(f"| HTTP and the rest | {rest * 1000 / posts:.2f} |")
            for label in sorted(calls):
                print(f"| round trips to {label} | {calls[label] / posts:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="the kibitz checkout to measure (default: this one)")
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--warm", type=int, default=500)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL and Redis")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    source = Path(args.source).resolve() if args.source else ROOT
    if args.source:
        sys.path.insert(0, str(source))
    asyncio.run(measure(source, args.posts, args.warm, args.postgres))
    return 0


if __name__ == "__main__":
    sys.exit(main())
