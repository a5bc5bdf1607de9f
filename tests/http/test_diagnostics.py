"""``GET /api/diagnostics`` on a real ``kibitz serve`` process: staff see its tasks, nobody else.

The soak (bench/soak.py) reads the asyncio task count from here; these tests prove the count
is the process's own (it rises with each live reader and falls back when they leave) and that
an anonymous caller learns none of it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.live import reader
from tests.helpers.servers import ROOT, Process, start_process, stop_process

URI = "/elsewhere/diagnosed"
READERS = 5


def _env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "KIBITZ_DATABASE_URL": database_url,
        "KIBITZ_DATA_DIR": str(tmp_path),
        "KIBITZ_SECRET_KEY": "diagnostics-test",
        "KIBITZ_MODERATION": "none",
        "KIBITZ_POST_RATE": "off",
        "KIBITZ_MIN_FILL_SECONDS": "0",
        "KIBITZ_DEMO": "",
    }


def _kibitz(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "server", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def process(database_url: str, tmp_path: Path) -> Iterator[tuple[Process, str]]:
    """``kibitz serve`` (live channel on the site's own /ws) and an operator's API token."""
    env = _env(database_url, tmp_path)
    running = start_process(env, "--live-port", "0")
    try:
        _kibitz(env, "user", "add", "ops", "--password-stdin", stdin="long enough password\n")
        yield running, _kibitz(env, "token", "add", "ops")
    finally:
        stop_process(running)


async def _figures(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    answer = await client.get("/api/diagnostics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def _until(
    client: httpx.AsyncClient, token: str, ok: Any, timeout: float = 10
) -> dict[str, Any]:
    """The figures once ``ok(figures)`` holds; fails with the last figures after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        figures = await _figures(client, token)
        if ok(figures) or asyncio.get_running_loop().time() > deadline:
            return figures
        await asyncio.sleep(0.1)


async def test_anonymous_callers_get_no_figures(process: tuple[Process, str]) -> None:
    """No token, a wrong token: 401 with the error shape, and no task count anywhere."""
    running, token = process
    async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
        anonymous = await client.get("/api/diagnostics")
        forged = await client.get("/api/diagnostics", headers={"Authorization": f"Bearer {token}x"})
        health = await client.get("/healthz")
    for answer in (anonymous, forged):
        assert answer.status_code == 401
        assert set(answer.json()) <= {"error", "fields"}
        assert "tasks" not in answer.text and "rss" not in answer.text
    assert health.status_code == 200
    assert "tasks" not in health.json() and "rss_kib" not in health.json()


async def test_staff_see_the_process_tasks_rise_and_fall_with_readers(
    process: tuple[Process, str],
) -> None:
    """The figures are the serving process's; each live reader adds tasks, leaving frees them."""
    running, token = process
    base = running.url.replace("http://", "ws://")
    async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
        idle = await _figures(client, token)
        assert idle["pid"] == running.proc.pid and idle["host"] == socket.gethostname()
        assert idle["tasks"] >= 1 and idle["threads"] >= 1
        assert idle["open_fds"] > 0 and idle["rss_kib"] > 0
        assert (idle["live_rooms"], idle["live_readers"]) == (0, 0)
        async with AsyncExitStack() as stack:
            for _ in range(READERS):
                await stack.enter_async_context(reader(base, URI))
            busy = await _until(client, token, lambda f: f["live_readers"] == READERS)
            assert (busy["live_rooms"], busy["live_readers"]) == (1, READERS)
            assert busy["tasks"] >= idle["tasks"] + READERS, (idle, busy)
            assert busy["open_fds"] >= idle["open_fds"] + READERS, (idle, busy)
        after = await _until(
            client, token, lambda f: f["live_readers"] == 0 and f["tasks"] <= idle["tasks"]
        )
    assert (after["live_rooms"], after["live_readers"]) == (0, 0), after
    assert after["tasks"] <= idle["tasks"], (idle, after)
