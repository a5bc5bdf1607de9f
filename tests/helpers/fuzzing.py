"""Helpers for the fuzz tests: a real `kibitz serve` with its log in a file, the example
budget, and the properties every answer must have.

``FUZZ_EXAMPLES`` sets how many examples each fuzzed target gets (CI: a small default so the
whole fuzz suite stays within a couple of minutes; ``make fuzz`` sets it high). ``FUZZ_SUMMARY``
names a JSON file each fuzz test appends its counts to (``make fuzz`` turns it into the table
in docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.servers import ROOT, drop_pg_database, free_port, new_pg_database

SECRET_EMAIL = "fuzz-secret@private.example"
# Resolved at import: a test may change the working directory (the command-line fuzzer does).
SUMMARY = os.path.abspath(os.environ["FUZZ_SUMMARY"]) if os.environ.get("FUZZ_SUMMARY") else None
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|Exception in ASGI application")


def long_run() -> bool:
    """Under `make fuzz` (FUZZ_EXAMPLES set) every run draws new examples; in CI they repeat."""
    return "FUZZ_EXAMPLES" in os.environ


def examples(default: int) -> int:
    """How many examples a fuzz target runs: FUZZ_EXAMPLES, else ``default`` (CI's budget)."""
    return int(os.environ.get("FUZZ_EXAMPLES", default))


@dataclass
class Tally:
    """What one fuzz target sent and got back, for the summary in docs/security.md."""

    target: str
    backend: str
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    def add(self, status: int) -> None:
        self.requests += 1
        self.statuses[status] += 1

    def write(self) -> None:
        path = SUMMARY
        if not path:
            return
        with open(path, "a", encoding="utf-8") as f:
            entry = {
                "target": self.target,
                "backend": self.backend,
                "requests": self.requests,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            }
            f.write(json.dumps(entry) + "\n")


@dataclass
class FuzzServer:
    url: str
    backend: str
    log: Path
    env: dict[str, str]
    token: str
    proc: subprocess.Popen[bytes]

    def tracebacks(self) -> list[str]:
        text = self.log.read_text(errors="replace")
        return [m.group(0) for m in TRACEBACK.finditer(text)]

    def assert_clean_log(self) -> None:
        text = self.log.read_text(errors="replace")
        assert not TRACEBACK.search(text), text[-4000:]


def cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        input=stdin,
        text=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


@contextlib.contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'kibitz.db'}"
        return
    url = asyncio.run(new_pg_database())
    try:
        yield url
    finally:
        asyncio.run(drop_pg_database(url))


@contextlib.contextmanager
def fuzz_server(backend: str, tmp_path: Path, **settings: str) -> Iterator[FuzzServer]:
    """`kibitz serve` on ``backend`` with a post, a staff token and a comment whose e-mail
    must never reach a reader; its output goes to a file the tests search for tracebacks."""
    with database(backend, tmp_path) as url:
        port = free_port()
        env = {
            "KIBITZ_DATABASE_URL": url,
            "KIBITZ_DATA_DIR": str(tmp_path / "data"),
            "KIBITZ_SECRET_KEY": "fuzz-secret-key-0123456789",
            "KIBITZ_POST_RATE": "off",
            "KIBITZ_MIN_FILL_SECONDS": "0",
            "KIBITZ_MODERATION": "none",
            "KIBITZ_DUPLICATE_WINDOW": "0",
            "KIBITZ_LIVE_PORT": str(free_port()),
            "KIBITZ_HTTP_PORT": str(port),
            **settings,
        }
        for args in (("migrate",), ("post", "add", "--slug", "hello", "--title", "Hello")):
            done = cli(env, *args)
            assert done.returncode == 0, done.stderr
        assert (
            cli(
                env,
                "user",
                "add",
                "fuzzboss",
                "--role",
                "admin",
                "--password-stdin",
                stdin="correct horse battery\n",
            ).returncode
            == 0
        )
        token = cli(env, "token", "add", "fuzzboss").stdout.strip()
        log = tmp_path / "server.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "server",
                    "serve",
                    "--port",
                    str(port),
                    "--live-port",
                    env["KIBITZ_LIVE_PORT"],
                ],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"kibitz serve exited: {log.read_text()}")
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("kibitz serve did not start")
                time.sleep(0.1)
            seeded = httpx.post(
                base + "/api/comments",
                json={
                    "uri": "/posts/hello",
                    "author": "Seed",
                    "email": SECRET_EMAIL,
                    "text": "seeded",
                },
            )
            assert seeded.status_code == 201, seeded.text
            yield FuzzServer(base, backend, log, env, token, proc)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


PRIVATE_KEYS = {"email", "address"}


def assert_nothing_private(body: bytes | str, *, staff: bool = False) -> None:
    """No answer to a reader names the seeded e-mail or carries an e-mail/address field."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    if staff:
        return
    assert SECRET_EMAIL not in text, text[:500]
    with contextlib.suppress(ValueError):
        _no_private_keys(json.loads(text))


def _no_private_keys(value: Any) -> None:
    if isinstance(value, dict):
        leaked = PRIVATE_KEYS & set(value)
        if "error" in value:  # an error names the bad fields ("email": "Please enter …")
            leaked = set()
            value = {k: v for k, v in value.items() if k != "fields"}
        assert not leaked, f"private fields {leaked} in an answer: {value}"
        for item in value.values():
            _no_private_keys(item)
    elif isinstance(value, list):
        for item in value:
            _no_private_keys(item)
