"""Where the time of one POST goes: each stage's wall time, averaged over sequential POSTs.

    .venv/bin/python bench/post_breakdown.py [--source DIR] [--posts 200] [--warm 500]

Runs kibitz in this process on a fresh SQLite database (default settings: the per-address
rate limit and the duplicate window on, moderation off), seeds a 5,000-comment thread (its
comments spread over the past weeks) and 100 small ones, then posts ``--warm`` comments
spread over the small threads, each from its own client address (what an hour of a busy
site leaves in the rate-limit store), and measures ``--posts`` comments to the big thread and
as many to a new thread, one at a time. Each stage is timed by wrapping the function that
does it; "HTTP and the rest" is the request's time as the client saw it minus the stages.

``--source DIR`` measures the kibitz at DIR instead (a checkout of an older commit), so the
same script shows before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

STAGES = [
    ("rate limit", "server.discussion.actions", "Discussion._limit"),
    ("duplicate check", "server.discussion.actions", "recent_duplicate"),
    ("sanitising (in a thread)", "server.discussion.actions", "render_comment"),
    ("moderation decision", "server.discussion.actions", "Discussion._decide"),
    ("insert and commit", "db.comments", "CommentStore.add"),
    ("shaping and publishing the event", "realtime.publisher", "Live.on_events"),
]


def wrap(spent: dict[str, float], label: str, module: Any, dotted: str) -> None:
    owner: Any = module
    *path, name = dotted.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
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


async def measure(posts: int, warm: int) -> None:
    import importlib
    import importlib.util

    import httpx

    from tests.helpers.servers import make_settings, serve

    # This checkout's seeding, with the measured checkout's stores (bench/wrk.py imports them
    # when it runs): an older commit may have no bench/wrk.py.
    spec = importlib.util.spec_from_file_location("bench_wrk", ROOT / "bench" / "wrk.py")
    assert spec is not None and spec.loader is not None
    wrk = sys.modules["bench_wrk"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wrk)

    spent: dict[str, float] = defaultdict(float)
    for label, module, dotted in STAGES:
        wrap(spent, label, importlib.import_module(module), dotted)
    work = Path(tempfile.mkdtemp(prefix="kibitz-breakdown-"))
    url = f"sqlite:///{work / 'kibitz.db'}"
    await wrk._seed_kibitz(url, {"/bench/t5000": 5000, **{f"/bench/p-{i}": 10 for i in range(100)}})
    settings = make_settings(
        url,
        work,
        KIBITZ_POST_RATE="5/minute;30/hour",
        KIBITZ_DUPLICATE_WINDOW="600",
        KIBITZ_TRUSTED_PROXIES="127.0.0.1",
    )
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
            total = sum([await post(target) for _ in range(posts)])
            print(f"\n{posts} POSTs to {target}, one at a time: {total * 1000 / posts:.2f} ms each")
            print("| stage | ms per POST |\n| --- | ---: |")
            for label, *_ in STAGES:
                print(f"| {label} | {spent[label] * 1000 / posts:.2f} |")
            rest = total - sum(spent.values())
            print(f"| HTTP and the rest | {rest * 1000 / posts:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="the kibitz checkout to measure (default: this one)")
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--warm", type=int, default=500)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.source:
        sys.path.insert(0, str(Path(args.source).resolve()))
    asyncio.run(measure(args.posts, args.warm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
