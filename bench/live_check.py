"""Measure the live hub's periodic check: one query for every open room's ``last_seq``.

    .venv/bin/python bench/live_check.py [sqlite|postgres] [rooms]

Makes ``rooms`` threads, then times :meth:`CommentStore.last_seqs` for all of them (what
one round of the check costs, every 2 s, in a process with that many threads open).
PostgreSQL needs KIBITZ_TEST_DATABASE_URL (a fresh database is made and dropped).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db.comments import CommentStore
from db.database import connect
from db.migrate import migrate
from db.models import now
from tests.helpers.servers import drop_pg_database, new_pg_database


async def measure(url: str, rooms: int) -> list[float]:
    db = await connect(url)
    try:
        await migrate(db)
        async with db.transaction() as conn:
            await conn.executemany(
                "INSERT INTO threads (uri, title, created) VALUES ($1, NULL, $2)",
                [(f"/t/{n}", now()) for n in range(rooms)],
            )
        store = CommentStore(db)
        async with db.read() as conn:
            ids = [int(r["id"]) for r in await conn.fetch("SELECT id FROM threads")]
        timings = []
        for _ in range(30):
            started = time.perf_counter()
            stands, _ = await store.last_seqs(ids)
            timings.append((time.perf_counter() - started) * 1000)
            assert len(stands) == rooms
        return timings
    finally:
        await db.close()


async def main() -> None:
    backend = sys.argv[1] if len(sys.argv) > 1 else "postgres"
    rooms = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    if backend == "postgres":
        url = await new_pg_database()
        try:
            timings = await measure(url, rooms)
        finally:
            await drop_pg_database(url)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            timings = await measure(f"sqlite:///{tmp}/bench.db", rooms)
    timings.sort()
    print(
        f"{backend}, {rooms} open rooms: one check {statistics.median(timings):.2f} ms median, "
        f"{timings[int(len(timings) * 0.95)]:.2f} ms p95 (every 2 s)"
    )


if __name__ == "__main__":
    asyncio.run(main())
