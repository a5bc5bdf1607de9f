"""Schema migrations: idempotent, and safe when several processes migrate one database at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from db.database import connect
from db.migrate import available, migrate
from db.models import maybe_datetime
from tests.helpers.servers import ROOT, RUN_ID, create_pg_database, drop_pg_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no schema at all (the shared fixture's are migrated already)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    url = await create_pg_database(f"kibitz_m_{RUN_ID}_{uuid.uuid4().hex[:8]}")
    try:
        yield url
    finally:
        await drop_pg_database(url)


async def _applied(url: str) -> list[str]:
    db = await connect(url, readers=1)
    try:
        async with db.read() as conn:
            rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        return [r["version"] for r in rows]
    finally:
        await db.close()


async def test_migrate_twice_applies_nothing_the_second_time(empty_database_url: str) -> None:
    """The first run applies every migration; the second finds the schema up to date."""
    db = await connect(empty_database_url, readers=1)
    try:
        first = await migrate(db)
        second = await migrate(db)
    finally:
        await db.close()
    expected = [m.version for m in available(db.dialect)]
    assert first == expected and expected
    assert second == []
    assert await _applied(empty_database_url) == expected


async def test_two_connections_racing_migrate_once(empty_database_url: str) -> None:
    """Two databases handles migrating at the same moment apply each migration exactly once."""
    one = await connect(empty_database_url, readers=1)
    two = await connect(empty_database_url, readers=1)
    try:
        results = await asyncio.gather(migrate(one), migrate(two))
    finally:
        await one.close()
        await two.close()
    expected = [m.version for m in available(one.dialect)]
    assert sorted(results, key=len) == [[], expected]
    assert await _applied(empty_database_url) == expected


async def test_processes_starting_at_once_migrate_once(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Four `kibitz migrate` processes started together all succeed; each migration runs once."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KIBITZ_DATABASE_URL": empty_database_url,
        "KIBITZ_DATA_DIR": str(tmp_path),
        "KIBITZ_SECRET_KEY": "x" * 32,
    }
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            "migrate",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(4)
    ]
    try:
        outputs = [(await asyncio.wait_for(p.communicate(), timeout=90))[0].decode() for p in procs]
    except TimeoutError:
        for p in procs:
            if p.returncode is None:
                p.kill()
        said = [(await p.communicate())[0].decode() for p in procs]
        raise AssertionError(f"a `kibitz migrate` did not exit within 90 s: {said}") from None
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    assert sum(o.startswith("applied") for o in outputs) == 1, outputs
    assert sum("up to date" in o for o in outputs) == 3, outputs
    dialect = "sqlite" if urlsplit(empty_database_url).scheme == "sqlite" else "postgres"
    assert await _applied(empty_database_url) == [m.version for m in available(dialect)]


async def test_threads_decided_before_closed_at_take_their_latest_decision_event(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 120 dates a closed or reopened thread by its latest closed/opened event, so an
    export carries when; undecided threads, and decided ones without events, stay NULL."""
    db = await connect(empty_database_url, readers=1)
    start = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    at = [start + timedelta(days=i) for i in range(4)]
    try:
        monkeypatch.setattr(
            "db.migrate.available", lambda d: [m for m in available(d) if m.version < "120"]
        )
        await migrate(db)
        monkeypatch.undo()
        async with db.transaction() as conn:
            for uri, closed in (("/closed", 1), ("/reopened", 0), ("/open", None), ("/old", 1)):
                await conn.execute(
                    "INSERT INTO threads (uri, created, closed) VALUES ($1, $2, $3)",
                    uri,
                    start,
                    closed,
                )
            ids = {r["uri"]: r["id"] for r in await conn.fetch("SELECT id, uri FROM threads")}
            events = [
                ("/closed", "thread.closed", at[0]),
                ("/closed", "thread.opened", at[1]),
                ("/closed", "thread.closed", at[2]),
                ("/closed", "comment.created", at[3]),
                ("/reopened", "thread.closed", at[0]),
                ("/reopened", "thread.opened", at[1]),
                ("/open", "comment.created", at[2]),
            ]
            for seq, (uri, kind, when) in enumerate(events, 1):
                await conn.execute(
                    "INSERT INTO events (thread_id, seq, type, comment_id, created) "
                    "VALUES ($1, $2, $3, 0, $4)",
                    ids[uri],
                    seq,
                    kind,
                    when,
                )
        assert "120_thread_closed_at" in await migrate(db)
        async with db.read() as conn:
            rows = await conn.fetch("SELECT uri, closed_at FROM threads")
    finally:
        await db.close()
    found = {r["uri"]: maybe_datetime(r["closed_at"]) for r in rows}
    assert found == {"/closed": at[2], "/reopened": at[1], "/open": None, "/old": None}


def test_a_database_that_cannot_be_opened_ends_the_command_with_its_error(tmp_path: Path) -> None:
    """A file SQLite cannot open as a database ends `kibitz migrate` at once with the reason.

    Before, the connection opened before the error was never closed, and aiosqlite's thread
    (not a daemon) kept the process alive after printing it: replicas starting together hung
    the same way when one met the others' locks.
    """
    bad = tmp_path / "not-a-database.db"
    bad.write_bytes(bytes(range(256)) * 32)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KIBITZ_DATABASE_URL": f"sqlite:///{bad}",
        "KIBITZ_DATA_DIR": str(tmp_path),
        "KIBITZ_SECRET_KEY": "x" * 32,
    }
    done = subprocess.run(
        [sys.executable, "-m", "server", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done
    assert "file is not a database" in done.stderr
