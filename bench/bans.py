"""The ban check every comment pays: time the read a POST makes before storing a comment
(``db.screening``: duplicate, ban, staff, first-time) with 0, 100 and 1000 live bans.

A quarter of the bans each name an e-mail address, a network, an SSO user id and a name, so
the check must consult every kind; the commenter matches none (the common case).

    .venv/bin/python bench/bans.py [postgresql://postgres@127.0.0.1:5432/test]

With a PostgreSQL URL a fresh database is made on that server and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from db.bans import BanStore
from db.database import connect
from db.migrate import migrate
from db.models import now
from db.screening import Question, screen
from server.discussion.bans import ban_keys, parse_ban

CHECKS = 300


def _ban(i: int) -> dict[str, str]:
    return [
        {"email": f"t{i}@example.org"},
        {"address": f"10.{i % 250}.{i // 250}.0/24"},
        {"sub": f"u{i}"},
        {"name": f"Troll{i}"},
    ][i % 4]


async def per_check(url: str, bans: int) -> float:
    """Milliseconds per ban check with ``bans`` live bans."""
    db = await connect(url)
    try:
        await migrate(db)
        store = BanStore(db)
        for i in range(bans):
            await store.add(parse_ban(_ban(i)), None, "bench")
        keys = ban_keys(author="Ada", email="ada@example.org", address="203.0.113.5", sub=None)
        question = Question(
            uri="/bench",
            text="A comment.",
            duplicate_since=now(),
            ban=keys,
            known_email="ada@example.org",
        )
        found = await screen(db, question, now())
        assert not found.banned
        started = time.perf_counter()
        for _ in range(CHECKS):
            await screen(db, question, now())
        return (time.perf_counter() - started) / CHECKS * 1000
    finally:
        await db.close()


async def main(pg_url: str | None) -> None:
    for bans in (0, 100, 1000):
        path = tempfile.mkdtemp()
        print(f"sqlite   {bans:5d} bans: {await per_check(f'sqlite:///{path}/b.db', bans):.3f} ms")
    if pg_url is None:
        return
    for bans in (0, 100, 1000):
        name = f"kibitz_bench_bans_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(pg_url)
        await admin.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(pg_url)
        url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
        try:
            print(f"postgres {bans:5d} bans: {await per_check(url, bans):.3f} ms")
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
