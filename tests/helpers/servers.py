"""Servers for tests: real databases, kibitz served by uvicorn on a free port, `kibitz serve`
as a real subprocess, and the settings every test starts from.

The fixtures that use these live in tests/conftest.py; the functions live here so that test
modules import them from one helpers package and never from conftest or from each other.
PostgreSQL comes from ``KIBITZ_TEST_DATABASE_URL``; each test gets a database of its own,
cloned from a migrated template, so tests never see each other's rows and parallel runs never
collide. With ``CI=true`` a missing service fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn

from server.app import create_app
from server.cli import uvicorn_options
from server.settings import Settings, load

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
PG_URL = os.environ.get("KIBITZ_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("KIBITZ_TEST_REDIS_URL")
IN_CI = os.environ.get("CI", "").lower() == "true"
RUN_ID = uuid.uuid4().hex[:8]


def require(url: str | None, name: str) -> str:
    if url:
        return url
    if IN_CI:
        pytest.fail(f"{name} is not set: CI must run the service-backed tests")
    pytest.skip(f"{name} not set")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


async def _admin(statement: str) -> None:
    """Run one statement on the server's maintenance connection (CREATE/DROP DATABASE)."""
    admin = await asyncpg.connect(require(PG_URL, "KIBITZ_TEST_DATABASE_URL"))
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


async def create_pg_database(name: str, template: str | None = None) -> str:
    """Create database ``name`` (a clone of ``template`` when given); return its URL."""
    statement = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
    for attempt in range(20):
        try:
            await _admin(statement)
            break
        except asyncpg.exceptions.ObjectInUseError:
            # Another test is cloning the same template right now.
            await asyncio.sleep(0.05 * (attempt + 1))
    return _with_database(require(PG_URL, "KIBITZ_TEST_DATABASE_URL"), name)


_template: str | None = None


async def _pg_template() -> str:
    """A migrated template database, made once per test run."""
    global _template
    if _template is None:
        from db.database import connect
        from db.migrate import migrate

        name = f"kibitz_tpl_{RUN_ID}"
        db = await connect(await create_pg_database(name))
        try:
            await migrate(db)
        finally:
            await db.close()
        _template = name
    return _template


async def new_pg_database() -> str:
    return await create_pg_database(
        f"kibitz_t_{RUN_ID}_{uuid.uuid4().hex[:8]}", template=await _pg_template()
    )


async def drop_pg_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def drop_pg_template() -> None:
    """Drop the template made by this run, if any (the session fixture calls this at the end)."""
    if _template and PG_URL:
        await _admin(f'DROP DATABASE IF EXISTS "{_template}" WITH (FORCE)')


def make_settings(database_url: str, data_dir: Path, **overrides: str) -> Settings:
    env = {
        "KIBITZ_DATABASE_URL": database_url,
        "KIBITZ_DATA_DIR": str(data_dir),
        "KIBITZ_SECRET_KEY": "test-secret-" + RUN_ID,
        "KIBITZ_POST_RATE": "off",
        "KIBITZ_MIN_FILL_SECONDS": "0",
        "KIBITZ_MODERATION": "none",
        "KIBITZ_DUPLICATE_WINDOW": "0",  # tests post the same text freely; one test turns it on
        "KIBITZ_REDIS_PREFIX": f"kibitz-test-{RUN_ID}-{uuid.uuid4().hex[:6]}",
    }
    env.update(overrides)
    return load(env)


@dataclass
class Server:
    """A kibitz app served by uvicorn on a real socket, in this test's event loop."""

    url: str
    settings: Settings
    app: Any

    @property
    def state(self) -> Any:
        return self.app.state.kibitz

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, **kwargs)


@contextlib.asynccontextmanager
async def serve(settings: Settings, port: int | None = None) -> AsyncIterator[Server]:
    app = create_app(settings)
    port = port or free_port()
    # Served as `kibitz serve` serves: its protocol (limits, answers given again) and options.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **uvicorn_options()
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server did not start")
        await asyncio.sleep(0.01)
    try:
        yield Server(f"http://127.0.0.1:{port}", settings, app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@dataclass
class Process:
    url: str
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes]


def env_for(pg_url: str, redis_url: str, tmp_path: Path, prefix: str) -> dict[str, str]:
    """The environment of a ``kibitz serve`` process on a shared PostgreSQL and Redis."""
    return {
        "KIBITZ_DATABASE_URL": pg_url,
        "KIBITZ_REDIS_URL": redis_url,
        "KIBITZ_REDIS_PREFIX": prefix,
        "KIBITZ_DATA_DIR": str(tmp_path),
        "KIBITZ_SECRET_KEY": "processes-test",
        "KIBITZ_MODERATION": "none",
        "KIBITZ_POST_RATE": "off",
        "KIBITZ_MIN_FILL_SECONDS": "0",
    }


def start_process(
    env: dict[str, str],
    *args: str,
    port: int | None = None,
    ready_path: str = "/healthz",
    timeout: float = 30,
) -> Process:
    """Start ``kibitz serve`` as a real subprocess and wait until it answers."""
    port = port or free_port()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port), *args],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"kibitz serve exited with {proc.returncode}:\n{out}")
        try:
            if httpx.get(url + ready_path, timeout=1).status_code < 500:
                return Process(url, port, full_env, proc)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("kibitz serve did not answer in time")


def stop_process(process: Process) -> str:
    process.proc.terminate()
    try:
        out, _ = process.proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.proc.kill()
        out, _ = process.proc.communicate()
    return out.decode(errors="replace") if out else ""
