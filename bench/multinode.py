"""Fan-out across processes: 2 and 4 independent ``kibitz serve`` processes on one
PostgreSQL and one Redis, readers spread evenly over them, every comment posted to the
first. Same measures as ``bench/fanout.py`` (which this reuses): time from the POST's
response to the last reader's receipt, p50/p99/max, server memory per reader (all
processes together).

    .venv/bin/python bench/multinode.py --processes 2 4 --readers 1000 --comments 20
"""

from __future__ import annotations

import argparse
import asyncio
import os

import httpx
from fanout import (
    fresh_database,
    kibitz_poster,
    kibitz_processes,
    make_post,
    measure,
    raise_fd_limit,
)


async def run(args: argparse.Namespace) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        for count in args.processes:
            for readers in args.readers:
                async with fresh_database(args.database_url) as db_url:
                    uri = await make_post(db_url, "bench")
                    with kibitz_processes(db_url, args.redis_url, count) as procs:
                        targets = [("127.0.0.1", live, f"/ws?uri={uri}") for _, _, live in procs]
                        first = f"http://127.0.0.1:{procs[0][1]}"
                        result = await measure(
                            f"{count} procs",
                            targets,
                            readers,
                            args.comments,
                            kibitz_poster(client, first, uri),
                            [p.pid for p, _, _ in procs],
                            args.client_procs,
                        )
                print(result.line(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--readers", type=int, nargs="+", default=[1000])
    parser.add_argument("--comments", type=int, default=20)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "KIBITZ_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("KIBITZ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    print(
        f"open files limit {raise_fd_limit()}; {os.cpu_count()} CPUs; "
        f"{args.comments} comments each",
        flush=True,
    )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
