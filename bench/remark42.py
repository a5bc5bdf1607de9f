"""Remark42 (Go, BoltDB) beside kibitz, from a binary built outside this repository.

Neither Remark42's code nor a script that builds it belongs here; docs/performance.md says in
words how the binary used for the figures was built (its repository vendors its Go modules).
``bench/wrk.py --remark42 PATH`` starts it twice, as its docs run it: on both cores, and
pinned to one core (``taskset``), each with anonymous login on, BoltDB in a directory of its
own, everything else default — its per-address rate limits included, which the load stays
under by giving requests distinct client addresses (X-Forwarded-For, trusted from loopback),
as it does for kibitz.

Seeding goes through Remark42's own importer (its "native" export format, posted to its admin
API, then its ``/admin/wait``), with the same threads and texts as the other servers.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.servers import Server, Threads, comment_text, free_port, pinned, wait_until_up

SITE = "remark"
ADMIN_PASSWORD = "bench-admin"


def start_remark42(binary: Path, work: Path, name: str, cores: str | None) -> Server:
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "remark42.log"
    proc = subprocess.Popen(
        pinned(
            [
                str(binary),
                "server",
                f"--url=http://127.0.0.1:{port}",
                f"--port={port}",
                "--address=127.0.0.1",
                f"--site={SITE}",
                f"--store.bolt.path={work / 'var'}",
                f"--backup={work / 'backup'}",
                f"--avatar.fs.path={work / 'avatars'}",
                f"--image.fs.path={work / 'pictures'}",
                f"--admin-passwd={ADMIN_PASSWORD}",
                "--auth.anon",
                "--trusted-proxy=127.0.0.1/32",
            ],
            cores,
        ),
        env={**os.environ, "SECRET": "bench-" + "x" * 32},
        cwd=work,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_up(f"{base}/ping", proc, log)
    seeded: Threads = {}

    def seed(threads: Threads) -> None:
        # Remark42's importer replaces a site's comments: import everything seeded so far.
        seeded.update(threads)
        _import(base, seeded)

    logins = iter(range(1, 1 << 30))

    def token() -> str:
        """A fresh anonymous login (its token lives five minutes): a JWT for ``X-JWT``."""
        n = next(logins)
        request = urllib.request.Request(
            f"{base}/auth/anonymous/login?user=bench{n}&aud={SITE}&site={SITE}",
            headers={"X-Forwarded-For": f"44.255.{n // 256 % 256}.{n % 256}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            for header in response.headers.get_all("Set-Cookie") or []:
                if header.startswith("JWT="):
                    return str(header).split(";", 1)[0].removeprefix("JWT=")
        raise SystemExit(f"Remark42 gave no JWT on anonymous login; see {log}")

    return Server(name, port, proc, seed, extra={"token": token})


def _import(base: str, threads: Threads) -> None:
    start = datetime.now(UTC)
    lines = [json.dumps({"version": 1, "users": [], "posts": []})]
    for uri, n in threads.items():
        for i in range(n):
            text = comment_text(uri, i)
            lines.append(
                json.dumps(
                    {
                        "id": f"{uri}#{i}",
                        "pid": "",
                        "text": _html(text),
                        "orig": text,
                        "user": {"name": f"Reader {i}", "id": f"anonymous_reader{i}"},
                        "locator": {"site": SITE, "url": uri},
                        "time": (start - timedelta(minutes=10 * (n - i))).isoformat(),
                    }
                )
            )
    auth = "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    body = ("\n".join(lines) + "\n").encode()
    request = urllib.request.Request(
        f"{base}/api/v1/admin/import?site={SITE}&provider=native",
        data=body,
        headers={"Authorization": auth, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60):
        pass
    wait = urllib.request.Request(
        f"{base}/api/v1/admin/wait?site={SITE}", headers={"Authorization": auth}
    )
    with urllib.request.urlopen(wait, timeout=900) as response:
        status = json.load(response).get("status")
    if status != "completed":
        raise SystemExit(f"Remark42's import ended with {status!r}")


def _html(text: str) -> str:
    """The comment as kibitz renders it: Remark42 stores rendered HTML beside the source."""
    from server.discussion.markup import render_comment

    return render_comment(text)
