"""Soak: mixed load on one ``kibitz serve`` for a long time, sampling what could leak.

    .venv/bin/python bench/soak.py [--minutes 30] [--json build/soak.json]

One process on SQLite (or ``KIBITZ_DATABASE_URL``), moderation ``all``. Writers post with
an ``Idempotency-Key``; a moderator approves (and now and then deletes or marks as spam)
through the API; readers join threads, stay a while and drop, some resuming with ``since``.
Each minute it samples the process's resident memory, open file descriptors and threads
(from ``/proc``). Asyncio tasks are not sampled: kibitz does not expose them, and a leaked
task shows as memory anyway. The verdict compares the last sample with the one taken after
warm-up (a fifth into the run): growth must stay under 10 %. Not part of CI (``make soak``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.driver import ROOT, App

THREADS = [f"/posts/soak-{n}" for n in range(20)]


@dataclass
class Sample:
    minute: float
    rss_kib: int
    fds: int
    threads: int
    posted: int
    approved: int
    reader_sessions: int


@dataclass
class Soak:
    minutes: float
    samples: list[Sample] = field(default_factory=list)
    posted: int = 0
    approved: int = 0
    removed: int = 0
    reader_sessions: int = 0
    errors: list[str] = field(default_factory=list)

    def growth(self) -> dict[str, float]:
        """Per measure: last sample against the one after warm-up, as a fraction."""
        if len(self.samples) < 2:
            return {}
        warm = self.samples[max(1, len(self.samples) // 5)]
        last = self.samples[-1]
        return {
            name: (getattr(last, name) - getattr(warm, name)) / max(1, getattr(warm, name))
            for name in ("rss_kib", "fds", "threads")
        }


def proc_sample(pid: int) -> tuple[int, int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = int(fields["VmRSS"].split()[0])
    threads = int(fields["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


async def writer(app: App, soak: Soak, stop: asyncio.Event, n: int) -> None:
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
        i = 0
        while not stop.is_set():
            i += 1
            uri = random.choice(THREADS)
            body = {"uri": uri, "author": f"soak{n}", "email": f"s{n}@example.org"}
            body["text"] = f"soak {n} #{i} " + "words " * random.randint(1, 40)
            try:
                answer = await client.post(
                    "/api/comments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
                )
                if answer.status_code == 201:
                    soak.posted += 1
                else:
                    soak.errors.append(f"post {answer.status_code}")
            except httpx.HTTPError as exc:
                soak.errors.append(f"post {exc!r}")
            await asyncio.sleep(random.uniform(0.05, 0.3))


async def moderator(app: App, token: str, soak: Soak, stop: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=app.url, timeout=10, headers=headers) as client:
        while not stop.is_set():
            try:
                queue = (await client.get("/api/moderation", params={"status": "pending"})).json()
                for item in queue.get("comments", [])[:50]:
                    action = random.choices(["approve", "spam", "delete"], [90, 5, 5])[0]
                    done = await client.post(f"/api/comments/{item['id']}/{action}")
                    if done.status_code == 200:
                        if action == "approve":
                            soak.approved += 1
                        else:
                            soak.removed += 1
            except (httpx.HTTPError, ValueError) as exc:
                soak.errors.append(f"moderate {exc!r}")
            await asyncio.sleep(1.0)


async def reader(app: App, soak: Soak, stop: asyncio.Event) -> None:
    last: dict[str, int] = {}
    while not stop.is_set():
        uri = random.choice(THREADS)
        since = last.get(uri) if random.random() < 0.5 else None
        url = f"ws://127.0.0.1:{app.live_port}/ws?uri={uri}"
        if since is not None:
            url += f"&since={since}"
        try:
            async with connect(url, open_timeout=10, compression=None) as ws:
                soak.reader_sessions += 1
                until = time.monotonic() + random.uniform(2, 30)
                while time.monotonic() < until and not stop.is_set():
                    try:
                        message = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                    except TimeoutError:
                        continue
                    if "seq" in message:
                        last[uri] = message["seq"]
                    elif message["type"] == "hello":
                        last[uri] = message["cursor"]
        except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
            soak.errors.append(f"reader {exc!r}")
            await asyncio.sleep(1)


async def soak(minutes: float, readers: int = 60, writers: int = 4) -> Soak:
    result = Soak(minutes)
    with tempfile.TemporaryDirectory(prefix="kibitz-soak-") as tmp:
        env = {
            "KIBITZ_DATABASE_URL": os.environ.get("KIBITZ_DATABASE_URL")
            or f"sqlite:///{tmp}/kibitz.db",
            "KIBITZ_DATA_DIR": tmp,
            "KIBITZ_SECRET_KEY": "soak",
            "KIBITZ_MODERATION": "all",
            "KIBITZ_POST_RATE": "off",
            "KIBITZ_MIN_FILL_SECONDS": "0",
            "KIBITZ_DUPLICATE_WINDOW": "0",
        }
        cli(env, "migrate")
        for uri in THREADS:
            slug = uri.rsplit("/", 1)[1]
            cli(env, "post", "add", "--slug", slug, "--title", slug)
        cli(env, "user", "add", "soak-mod", "--password-stdin", stdin="soak-password\n")
        token = cli(env, "token", "add", "soak-mod").split()[-1]
        app = App("soak", env, Path(tmp))
        await app.start()
        assert app.proc is not None
        stop = asyncio.Event()
        tasks = [asyncio.create_task(writer(app, result, stop, n)) for n in range(writers)]
        tasks.append(asyncio.create_task(moderator(app, token, result, stop)))
        tasks += [asyncio.create_task(reader(app, result, stop)) for _ in range(readers)]
        started = time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < minutes * 60:
                rss, fds, threads = proc_sample(app.proc.pid)
                result.samples.append(
                    Sample(
                        round(elapsed / 60, 2),
                        rss,
                        fds,
                        threads,
                        result.posted,
                        result.approved,
                        result.reader_sessions,
                    )
                )
                print(asdict(result.samples[-1]), flush=True)
                await asyncio.sleep(min(60.0, minutes * 60 / 5))
            rss, fds, threads = proc_sample(app.proc.pid)
            result.samples.append(
                Sample(
                    round((time.monotonic() - started) / 60, 2),
                    rss,
                    fds,
                    threads,
                    result.posted,
                    result.approved,
                    result.reader_sessions,
                )
            )
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            app.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--readers", type=int, default=60)
    parser.add_argument("--json", help="write samples and the verdict here")
    args = parser.parse_args()
    result = asyncio.run(soak(args.minutes, readers=args.readers))
    growth = result.growth()
    print(
        f"posted {result.posted}, approved {result.approved}, removed {result.removed}, "
        f"reader sessions {result.reader_sessions}, errors {len(result.errors)}"
    )
    for name, fraction in growth.items():
        print(f"{name}: {fraction:+.1%} after warm-up")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps({**asdict(result), "growth": growth}, indent=2, default=str)
        )
    return 0 if growth and all(f < 0.10 for f in growth.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
