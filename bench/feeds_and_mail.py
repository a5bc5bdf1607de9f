"""Measure feed latency on a large database and mail throughput through a real SMTP server.

    .venv/bin/python bench/feeds_and_mail.py [sqlite|postgres] [comments]

PostgreSQL needs KIBITZ_TEST_DATABASE_URL (a fresh database is made and dropped).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db.mail import MailStore, OutgoingMail
from db.models import now
from tests.helpers.mail import Inbox
from tests.helpers.servers import (
    drop_pg_database,
    free_port,
    make_settings,
    new_pg_database,
    serve,
)


async def fill(server, comments: int, threads: int = 200) -> None:  # type: ignore[no-untyped-def]
    for n in range(threads):
        await server.state.posts.add(
            slug=f"p{n}", title=f"Post {n}", author="A", body_html="<p>x</p>"
        )
    start = now() - timedelta(days=365)
    statuses = ("approved",) * 8 + ("pending", "spam")
    async with server.state.db.transaction() as conn:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM threads ORDER BY id")]
        await conn.executemany(
            "INSERT INTO comments (thread_id, author, email, text, html, status, created) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                (
                    ids[i % threads],
                    f"Author {i}",
                    f"a{i}@example.org",
                    "t" * 300,
                    "<p>" + "t" * 300 + "</p>",
                    statuses[i % 10],
                    start + timedelta(minutes=i),
                )
                for i in range(comments)
            ],
        )


async def timed(
    client,
    path: str,
    headers: dict[str, str] | None = None,  # type: ignore[no-untyped-def]
    runs: int = 50,
) -> tuple[float, float, int]:
    samples = []
    status = 0
    for _ in range(runs):
        t = time.perf_counter()
        response = await client.get(path, headers=headers or {})
        samples.append((time.perf_counter() - t) * 1000)
        status = response.status_code
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], status


async def main(backend: str, comments: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    url = await new_pg_database() if backend == "postgres" else f"sqlite:///{tmp / 'k.db'}"
    smtp_port = free_port()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        settings = make_settings(url, tmp, KIBITZ_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}")
        async with serve(settings) as server, server.client() as client:
            t = time.perf_counter()
            await fill(server, comments)
            print(
                f"{backend}: {comments} comments in 200 threads, filled in "
                f"{time.perf_counter() - t:.1f} s"
            )
            for path in ("/feeds/comments.atom", "/feeds/thread.atom?uri=/posts/p7"):
                first = await client.get(path)
                median, p95, status = await timed(client, path)
                print(
                    f"  GET {path}: {len(first.content) / 1024:.0f} KiB, "
                    f"median {median:.1f} ms, p95 {p95:.1f} ms ({status})"
                )
                median, p95, status = await timed(
                    client, path, {"If-None-Match": first.headers["etag"]}
                )
                print(
                    f"  GET {path} If-None-Match: median {median:.1f} ms, "
                    f"p95 {p95:.1f} ms ({status})"
                )

            store = MailStore(server.state.db)
            n = 200
            t = time.perf_counter()
            for i in range(n):
                await store.enqueue(OutgoingMail(f"bench:{i}", f"r{i}@example.org", "s", "b"))
            server.state.mail.sender.wake()
            queued = time.perf_counter() - t
            while len(inbox.messages) < n:
                await asyncio.sleep(0.01)
            total = time.perf_counter() - t
            print(
                f"  mail: {n} queued in {queued * 1000:.0f} ms, all delivered after "
                f"{total:.2f} s ({n / total:.0f} mails/s, one SMTP connection each)"
            )
    finally:
        controller.stop()
        if backend == "postgres":
            await drop_pg_database(url)


if __name__ == "__main__":
    asyncio.run(
        main(
            sys.argv[1] if len(sys.argv) > 1 else "sqlite",
            int(sys.argv[2]) if len(sys.argv) > 2 else 100_000,
        )
    )
