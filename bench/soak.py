"""Soak: mixed load on one ``kibitz serve`` for a long time, sampling what could leak.

    .venv/bin/python bench/soak.py [--minutes 30] [--json build/soak.json]

One process on SQLite (or ``KIBITZ_DATABASE_URL``), moderation ``all``. Twenty threads take
comments at a time; every two minutes (``--rotate-minutes``) twenty new ones open and the old
ones go quiet, so what a thread costs stays level and growth means a leak. Writers post with
an ``Idempotency-Key``; a moderator approves (and now and then deletes or marks as spam)
through the API; readers join threads, stay a while and drop, some resuming with ``since``.
Anonymous voters get a voter id, read a thread best first, vote on its comments, change some
votes and withdraw others, then go and a new voter comes. Each minute it samples the
process's resident memory, open file descriptors and threads (from ``/proc``, as the OS sees
them) and its asyncio tasks (from the staff-only ``GET /api/diagnostics``, with the
moderator's token). The verdict compares the last sample with the one taken after warm-up
(a fifth into the run): growth of memory, descriptors, threads and tasks must each stay under
10 %. Not part of CI (``make soak``).
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
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.driver import ROOT, App

HOT_THREADS = 20  # threads taking comments at any one time
MEASURES = ("rss_kib", "fds", "threads", "tasks")  # the verdict: each grows < 10 % after warm-up
EXAMPLES = 20  # errors kept word for word; the rest are only counted (the harness must not leak)


@dataclass
class Sample:
    minute: float
    rss_kib: int
    fds: int
    threads: int
    tasks: int
    live_readers: int
    live_rooms: int
    posted: int
    approved: int
    votes: int
    reader_sessions: int


@dataclass
class Soak:
    minutes: float
    rotate_minutes: float = 2.0  # 0: the same 20 threads all along
    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    posted: int = 0
    approved: int = 0
    removed: int = 0
    reader_sessions: int = 0
    done: Counter[str] = field(
        default_factory=Counter
    )  # requests that did what they asked, by kind
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def thread(self) -> str:
        """A thread taking comments now: one of the current 20.

        Every ``rotate_minutes`` twenty new threads open and the old ones go quiet, as on a
        site where comments gather under the newest posts. That holds what a thread costs
        to read steady, so memory that still grows is a leak, not a bigger working set;
        with 0 the same 20 threads grow all along (1,300 comments each in 30 minutes), and
        the working memory that grows with them shows up as growth.
        """
        window = 0
        if self.rotate_minutes > 0:
            window = int((time.monotonic() - self.started) // (self.rotate_minutes * 60))
        return f"/soak/{window}/t{random.randrange(HOT_THREADS)}"

    def error(self, kind: str, what: object) -> None:
        self.errors[kind] += 1
        if len(self.examples) < EXAMPLES:
            said = what if isinstance(what, str) else f"{kind} {what!r}"
            self.examples.append(said[:200])

    @property
    def votes(self) -> int:
        return self.done["vote"] + self.done["vote changed"] + self.done["vote withdrawn"]

    def as_json(self) -> dict[str, Any]:
        # Not asdict(): it rebuilds a Counter from its items, counting the pairs.
        return {
            "minutes": self.minutes,
            "rotate_minutes": self.rotate_minutes,
            "samples": [asdict(s) for s in self.samples],
            "done": dict(self.done),
            "errors": dict(self.errors),
            "examples": self.examples,
        }

    @property
    def warm(self) -> Sample:
        """The sample after warm-up (a fifth into the run): what the last one is held to."""
        return self.samples[max(1, len(self.samples) // 5)]

    def growth(self) -> dict[str, float]:
        """Per measure: last sample against the one after warm-up, as a fraction."""
        if len(self.samples) < 2:
            return {}
        warm, last = self.warm, self.samples[-1]
        return {
            name: (getattr(last, name) - getattr(warm, name)) / max(1, getattr(warm, name))
            for name in MEASURES
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
    # The site's own origin: a new thread opens with its first comment (CONTRACT.md).
    headers = {"Origin": app.url}
    async with httpx.AsyncClient(base_url=app.url, timeout=10, headers=headers) as client:
        i = 0
        while not stop.is_set():
            i += 1
            uri = soak.thread()
            body = {"uri": uri, "author": f"soak{n}", "email": f"s{n}@example.org"}
            body["text"] = f"soak {n} #{i} " + "words " * random.randint(1, 40)
            try:
                answer = await client.post(
                    "/api/comments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
                )
                if answer.status_code == 201:
                    soak.posted += 1
                    soak.done["post"] += 1
                else:
                    soak.error("post", f"post {answer.status_code}")
            except httpx.HTTPError as exc:
                soak.error("post", exc)
            await asyncio.sleep(random.uniform(0.05, 0.3))


async def moderator(app: App, token: str, soak: Soak, stop: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=app.url, timeout=10, headers=headers) as client:
        while not stop.is_set():
            try:
                queue = (await client.get("/api/moderation", params={"status": "pending"})).json()
                soak.done["moderation queue"] += 1
                for item in queue.get("comments", [])[:50]:
                    action = random.choices(["approve", "spam", "delete"], [90, 5, 5])[0]
                    done = await client.post(f"/api/comments/{item['id']}/{action}")
                    if done.status_code == 200:
                        soak.done[action] += 1
                        if action == "approve":
                            soak.approved += 1
                        else:
                            soak.removed += 1
                    else:
                        soak.error("moderate", f"{action} {done.status_code}")
            except (httpx.HTTPError, ValueError) as exc:
                soak.error("moderate", exc)
            await asyncio.sleep(1.0)


async def reader(app: App, soak: Soak, stop: asyncio.Event) -> None:
    last: dict[str, int] = {}
    while not stop.is_set():
        uri = soak.thread()
        since = last.get(uri) if random.random() < 0.5 else None
        url = f"ws://127.0.0.1:{app.live_port}/ws?uri={uri}"
        if since is not None:
            url += f"&since={since}"
        try:
            async with connect(url, open_timeout=10, compression=None) as ws:
                soak.reader_sessions += 1
                soak.done["reader session"] += 1
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
            soak.error("reader", exc)
            await asyncio.sleep(1)


async def voter(app: App, soak: Soak, stop: asyncio.Event) -> None:
    """Anonymous voters one after another: each reads a thread, votes, changes, withdraws."""
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
        while not stop.is_set():
            try:
                await one_voter(client, soak, stop)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                soak.error("vote", exc)
                await asyncio.sleep(1)


async def one_voter(client: httpx.AsyncClient, soak: Soak, stop: asyncio.Event) -> None:
    answer = await client.post("/api/voters")
    if answer.status_code != 201:
        soak.error("voter", f"voter {answer.status_code}")
        await asyncio.sleep(1)
        return
    soak.done["voter"] += 1
    me = answer.json()["voter"]
    mine: dict[int, int] = {}
    for _ in range(random.randint(3, 15)):
        if stop.is_set():
            return
        params = {"uri": soak.thread(), "sort": "best", "limit": "20"}
        page = await client.get("/api/comments", params=params)
        if page.status_code != 200:
            soak.error("read", f"read {page.status_code}")
            continue
        soak.done["read"] += 1
        comments = [c["id"] for c in page.json()["comments"]]
        if not comments:
            await asyncio.sleep(1)
            continue
        target = random.choice(list(mine) if mine and random.random() < 0.4 else comments)
        kind, value = _next_vote(mine.get(target, 0))
        cast = await client.post(f"/api/comments/{target}/vote", json={"value": value, "voter": me})
        if cast.status_code == 200 and cast.json()["mine"] == value:
            soak.done[kind] += 1
            mine[target] = value
        elif cast.status_code == 404:
            soak.done["vote on a removed comment"] += 1  # moderated away since the read: fine
            mine.pop(target, None)
        else:
            soak.error("vote", f"{kind} {cast.status_code} {cast.text[:80]}")
        await asyncio.sleep(random.uniform(0.1, 0.6))


def _next_vote(current: int) -> tuple[str, int]:
    """A first vote, or a change of mind about one already cast (flip it or withdraw it)."""
    if current == 0:
        return "vote", random.choice((1, 1, 1, -1))
    if random.random() < 0.5:
        return "vote changed", -current
    return "vote withdrawn", 0


async def tasks_of(client: httpx.AsyncClient, pid: int) -> dict[str, Any]:
    """The process's own figures from the staff-only diagnostics endpoint (three tries: the
    machine may be busy, and one slow answer must not end a half-hour run)."""
    for attempt in range(3):
        try:
            answer = await client.get("/api/diagnostics", timeout=30)
            answer.raise_for_status()
            break
        except httpx.HTTPError:
            if attempt == 2:
                raise
            await asyncio.sleep(2)
    figures: dict[str, Any] = answer.json()
    if figures["pid"] != pid:
        raise RuntimeError(f"diagnostics answered for pid {figures['pid']}, not {pid}")
    return figures


async def take_sample(app: App, client: httpx.AsyncClient, soak: Soak, elapsed: float) -> None:
    assert app.proc is not None
    rss, fds, threads = proc_sample(app.proc.pid)
    inside = await tasks_of(client, app.proc.pid)
    soak.samples.append(
        Sample(
            round(elapsed / 60, 2),
            rss,
            fds,
            threads,
            inside["tasks"],
            inside["live_readers"],
            inside["live_rooms"],
            soak.posted,
            soak.approved,
            soak.votes,
            soak.reader_sessions,
        )
    )
    print(asdict(soak.samples[-1]), flush=True)


async def soak(
    minutes: float, readers: int = 60, writers: int = 4, voters: int = 4, rotate: float = 2.0
) -> Soak:
    result = Soak(minutes, rotate)
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
            "KIBITZ_VOTE_RATE": "off",
            "KIBITZ_VOTER_RATE": "off",
            # Every reader comes from 127.0.0.1: let them all in (the default is 50).
            "KIBITZ_LIVE_PER_ADDRESS": str(readers + 10),
        }
        cli(env, "migrate")
        cli(env, "user", "add", "soak-mod", "--password-stdin", stdin="soak-password\n")
        token = cli(env, "token", "add", "soak-mod").split()[-1]
        app = App("soak", env, Path(tmp))
        await app.start()
        assert app.proc is not None
        stop = asyncio.Event()
        tasks = [asyncio.create_task(writer(app, result, stop, n)) for n in range(writers)]
        tasks.append(asyncio.create_task(moderator(app, token, result, stop)))
        tasks += [asyncio.create_task(reader(app, result, stop)) for _ in range(readers)]
        tasks += [asyncio.create_task(voter(app, result, stop)) for _ in range(voters)]
        staff = httpx.AsyncClient(
            base_url=app.url, timeout=10, headers={"Authorization": f"Bearer {token}"}
        )
        started = result.started = time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < minutes * 60:
                await take_sample(app, staff, result, elapsed)
                await asyncio.sleep(min(60.0, minutes * 60 / 5))
            await take_sample(app, staff, result, time.monotonic() - started)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await staff.aclose()
            app.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--readers", type=int, default=60)
    parser.add_argument("--voters", type=int, default=4)
    parser.add_argument(
        "--rotate-minutes",
        type=float,
        default=2.0,
        help="open 20 new threads this often (0: the same 20 threads all along)",
    )
    parser.add_argument("--json", help="write samples and the verdict here")
    args = parser.parse_args()
    result = asyncio.run(
        soak(args.minutes, readers=args.readers, voters=args.voters, rotate=args.rotate_minutes)
    )
    growth = result.growth()
    print("done: " + ", ".join(f"{kind} {n}" for kind, n in sorted(result.done.items())))
    print(f"errors: {sum(result.errors.values())} {dict(result.errors)}")
    for example in result.examples:
        print(f"  {example}")
    for name, fraction in growth.items():
        before, after = getattr(result.warm, name), getattr(result.samples[-1], name)
        print(f"{name}: {before} at minute {result.warm.minute} -> {after}: {fraction:+.1%}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({**result.as_json(), "growth": growth}, indent=2))
    return 0 if growth and all(f < 0.10 for f in growth.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
