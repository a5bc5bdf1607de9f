"""The fault suite's driver: real processes, real load, real faults, then proof.

It starts its own PostgreSQL (initdb, fsync on) and redis-server on free ports, two
``kibitz serve`` processes on them, and keeps them busy: writers post comments and retry
like a careful client (the same ``Idempotency-Key`` until a 2xx, switching process when
one fails), busy-thread readers drop and resume with ``since`` now and then, and one
reader stays connected to a quiet thread the whole run (the reader issue 13 found
starved). Meanwhile it injects the faults, one phase each: kill -9 of an app process,
kill -9 of Redis, kill -9 of PostgreSQL (every backend), Redis hung by SIGSTOP for 10 s,
and the connections to PostgreSQL cut mid-query again and again through a TCP proxy that
also adds latency. The embedded default (``--embedded``: one process on SQLite, its data
directory on a small file system of the run's own) gets kill -9 in the middle of writes,
then that file system filled to the last block, then made to refuse writes, each freed again
under load. Then it proves, from the database itself:

* every comment acknowledged with a 2xx is stored, exactly once (nothing lost, nothing
  doubled by the retries);
* every reader, busy thread and quiet, holds every event of its thread exactly once, in
  ``seq`` order, with no gap;
* how long each fault kept writes from succeeding and readers from being complete,
  without restarting kibitz (a killed app process is started again, as a supervisor would);
* while the storage refused writes: every refused write was a 503 with Retry-After (no
  500), the form came back with the text kept and a message and, sent again afterwards,
  posted once; thread reads and the post page answered; /healthz said 503, then 200; and
  the process was never restarted.

``make faults`` runs the long version (``python -m tests.faults.driver --long``);
``tests/faults/test_faults.py`` runs a short one in CI. Results: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.faults.proxy import Proxy
from tests.faults.services import PostgresServer, RedisServer, Volume, free_port
from tests.helpers.view import form_values, parse

ROOT = Path(__file__).resolve().parents[2]
THREADS = {"busy": "/posts/busy", "quiet": "/posts/quiet"}


@dataclass(frozen=True)
class Config:
    phase_seconds: float = 4.0  # load before and after each fault
    down_seconds: float = 2.0  # how long a killed service stays down
    hang_seconds: float = 10.0  # how long Redis stays stopped (SIGSTOP)
    writers: int = 3
    busy_readers: int = 3
    write_pause: float = 0.05  # each writer's pause between comments
    quiet_every: float = 2.0  # one comment on the quiet thread this often
    drop_every: float = 6.0  # busy readers drop and resume about this often
    settle_timeout: float = 30.0  # after the load: readers must be complete within this
    volume_mb: int = 64  # the embedded run's file system, filled in its disk-full phase


SHORT = Config()
LONG = Config(
    phase_seconds=30.0,
    down_seconds=5.0,
    writers=8,
    busy_readers=8,
    drop_every=10.0,
    volume_mb=256,
)
# What the 503 of a storage that refuses writes says (server/errors.py, StorageRefused).
STORAGE_MESSAGE = "storage is full or read-only"


# -- processes ------------------------------------------------------------------------------


class App:
    """One ``kibitz serve`` process, started again on the same ports after a kill."""

    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.port, self.live_port = free_port(), free_port()
        self.env = env
        self.log = logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "server", "serve", "--port", str(self.port)),
                    *("--live-port", str(self.live_port)),
                ],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.log}")
                try:
                    if (await client.get(self.url + "/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer; see {self.log}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# -- what the load records ----------------------------------------------------------------


@dataclass
class Writes:
    acknowledged: dict[str, int] = field(default_factory=dict)  # text -> comment id
    ack_times: list[float] = field(default_factory=list)
    attempts: int = 0
    retries: int = 0
    given_up: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # 4xx other than the retry cases
    # Every attempt answered 5xx: (when, status, Retry-After header, the body's start).
    failed: list[tuple[float, int, str | None, str]] = field(default_factory=list)


@dataclass
class Reader:
    name: str
    uri: str
    prefer: int  # index of the app it connects to first
    drops: bool  # drops and resumes now and then (busy) or stays connected (quiet)
    last_seq: int = 0
    events: list[tuple[int, str, int]] = field(default_factory=list)
    out_of_order: list[tuple[int, int]] = field(default_factory=list)  # (had, got)
    resets: int = 0
    connects: int = 0


@dataclass
class Phase:
    name: str
    fault_at: float = 0.0
    healed_at: float = 0.0
    ended_at: float = 0.0
    restart_seconds: float = 0.0  # how long starting the killed service again took
    first_write_after_heal: float | None = None  # seconds after the service was back
    longest_write_gap: float = 0.0  # seconds without any acknowledged comment
    readers_complete_after: float | None = None  # seconds after the phase to all complete
    storage: Refusal | None = None  # what clients saw, when the storage refused writes


@dataclass
class Refusal:
    """What clients saw while the storage refused writes, and after (the storage phases)."""

    first_refused_after: float | None = None  # seconds from the fault to the first 503
    refused: int = 0  # attempts answered 503
    without_retry_after: int = 0  # of those, answered without Retry-After
    unclear: int = 0  # of those, without the message that says why
    server_errors: list[str] = field(default_factory=list)  # 5xx but 503, on any request
    reads: int = 0  # thread reads (API) and post pages asked for during the phase
    reads_failed: list[str] = field(default_factory=list)
    health_down: bool = False  # /healthz said 503 while writes were refused
    health_up_after: float | None = None  # seconds from the heal to /healthz 200
    form_kept: bool = False  # the form came back 503 with Retry-After, text and message
    form_posted_once: bool = False  # sent again after: 303, and again the same 303
    same_process: bool = False  # kibitz was not restarted

    def ok(self) -> bool:
        return (
            self.first_refused_after is not None
            and self.without_retry_after == 0
            and self.unclear == 0
            and not self.server_errors
            and not self.reads_failed
            and self.health_down
            and self.health_up_after is not None
            and self.form_kept
            and self.form_posted_once
            and self.same_process
        )


@dataclass
class Result:
    config: dict[str, Any]
    acknowledged: int
    stored: int
    lost: int
    doubled: int
    unacknowledged_stored: int
    attempts: int
    retries: int
    given_up: int
    refused: int
    server_errors: int  # writes answered 5xx other than 503
    readers: dict[str, dict[str, Any]]
    phases: list[dict[str, Any]]
    seconds: float

    @property
    def readers_complete(self) -> bool:
        return all(r["complete"] for r in self.readers.values())

    @property
    def storage_ok(self) -> bool:
        return all(Refusal(**p["storage"]).ok() for p in self.phases if p["storage"])

    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.doubled == 0
            and self.given_up == 0
            and self.refused == 0
            and self.readers_complete
            and self.storage_ok
        )

    def table(self) -> str:
        lines = [
            f"acknowledged {self.acknowledged}, stored {self.stored}, lost {self.lost}, "
            f"doubled {self.doubled}, retries {self.retries} of {self.attempts} attempts, "
            f"given up {self.given_up}, refused {self.refused}, "
            f"5xx other than 503 {self.server_errors}, "
            f"stored without an acknowledgement {self.unacknowledged_stored}",
            "",
            "| phase | service down | restart took | first write after it is back "
            "| longest write gap | readers complete after |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for p in self.phases:
            first = p["first_write_after_heal"]
            done = p["readers_complete_after"]
            down = p["healed_at"] - p["fault_at"]
            lines.append(
                f"| {p['name']} | {down:.1f} s | {p['restart_seconds']:.2f} s "
                f"| {'-' if first is None else f'{first:.2f} s'} "
                f"| {p['longest_write_gap']:.2f} s "
                f"| {'never' if done is None else f'{done:.2f} s'} |"
            )
        lines += self.storage_table()
        lines += [
            "",
            "| reader | thread | events | connections | complete |",
            "| --- | --- | ---: | ---: | --- |",
        ]
        for name, r in self.readers.items():
            lines.append(
                f"| {name} | {r['uri']} | {r['events']} | {r['connects']} "
                f"| {'yes' if r['complete'] else 'NO: ' + r['problem']} |"
            )
        return "\n".join(lines)

    def storage_table(self) -> list[str]:
        storage = [(p["name"], Refusal(**p["storage"])) for p in self.phases if p["storage"]]
        if not storage:
            return []
        lines = [
            "",
            "| phase | first 503 after | writes refused (503) | with Retry-After and message "
            "| other 5xx | reads answered | /healthz 503, then 200 after | form kept, then once "
            "| restarted |",
            "| --- | ---: | ---: | --- | ---: | ---: | ---: | --- | --- |",
        ]
        for name, r in storage:
            first = r.first_refused_after
            up = r.health_up_after
            clear = r.refused - max(r.without_retry_after, r.unclear)
            lines.append(
                f"| {name} | {'never' if first is None else f'{first:.2f} s'} | {r.refused} "
                f"| {clear} of {r.refused} | {len(r.server_errors)} "
                f"| {r.reads - len(r.reads_failed)} of {r.reads} "
                f"| {'yes' if r.health_down else 'NO'}, "
                f"{'never' if up is None else f'{up:.2f} s'} "
                f"| {'yes' if r.form_kept and r.form_posted_once else 'NO'} "
                f"| {'no' if r.same_process else 'YES'} |"
            )
        return lines


# -- the run ----------------------------------------------------------------------------


class Cutter:
    """Adds latency to a proxy and cuts every connection through it again and again."""

    def __init__(self, proxy: Proxy, every: float = 0.4, latency: float = 0.02) -> None:
        self.proxy, self.every, self.latency = proxy, every, latency
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.proxy.latency = self.latency
        self.task = asyncio.create_task(self._cut())

    async def _cut(self) -> None:
        while True:
            self.proxy.cut()
            await asyncio.sleep(self.every)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.proxy.latency = 0.0


class Run:
    def __init__(self, config: Config, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.pg: PostgresServer | Any = None
        self.redis: RedisServer | Any = None
        self.pg_proxy: Proxy | None = None
        self.redis_proxy: Proxy | None = None
        self.apps: list[App] = []
        self.writes = Writes()
        self.readers: list[Reader] = []
        self.phases: list[Phase] = []
        self.stop_writing = asyncio.Event()
        self.stop_reading = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    # set-up and tear-down

    async def setup(self) -> None:
        self.pg = PostgresServer()
        self.redis = RedisServer(self.workdir / "redis")
        self.pg.init()
        self.pg.start()
        self.pg.create_database()
        self.redis.start()
        # kibitz reaches PostgreSQL through a proxy that can add latency and cut connections.
        self.pg_proxy = Proxy(self.pg.port)
        await self.pg_proxy.start()
        self.redis_proxy = Proxy(self.redis.port)
        await self.redis_proxy.start()
        env = {
            "KIBITZ_DATABASE_URL": self.pg.url.replace(
                f":{self.pg.port}/", f":{self.pg_proxy.port}/"
            ),
            "KIBITZ_REDIS_URL": f"redis://127.0.0.1:{self.redis_proxy.port}/0",
            "KIBITZ_REDIS_PREFIX": f"kibitz-faults-{uuid.uuid4().hex[:8]}",
            "KIBITZ_DATA_DIR": str(self.workdir),
            "KIBITZ_SECRET_KEY": "fault-suite",
            "KIBITZ_MODERATION": "none",
            "KIBITZ_POST_RATE": "off",
            "KIBITZ_MIN_FILL_SECONDS": "0",
            "KIBITZ_DUPLICATE_WINDOW": "0",
        }
        self.apps = [App(name, env, self.workdir) for name in ("app-a", "app-b")]
        for app in self.apps:  # one after the other: the first migrates
            await app.start()
        conn = await asyncpg.connect(self.pg.url)
        try:
            for slug in THREADS:
                thread_id = await conn.fetchval(
                    "INSERT INTO threads (uri, title, created) VALUES ($1, $2, now()) RETURNING id",
                    THREADS[slug],
                    slug,
                )
                await conn.execute(
                    "INSERT INTO posts (slug, title, author, body_html, published, thread_id) "
                    "VALUES ($1, $1, 'faults', '<p>x</p>', now(), $2)",
                    slug,
                    thread_id,
                )
        finally:
            await conn.close()

    def teardown(self) -> None:
        for app in self.apps:
            app.stop()
        if self.redis is not None:
            self.redis.close()
        if self.pg is not None:
            self.pg.close()

    # load

    def app_for(self, prefer: int) -> App:
        """The preferred app if it runs, else the other (a load balancer's health check)."""
        first = self.apps[prefer % len(self.apps)]
        if first.alive:
            return first
        return next((a for a in self.apps if a.alive), first)

    async def post(self, client: httpx.AsyncClient, uri: str, author: str, text: str) -> None:
        """Send one comment until a 2xx, with one Idempotency-Key, as a careful client."""
        body = {"uri": uri, "author": author, "email": f"{author}@example.org", "text": text}
        key = uuid.uuid4().hex
        deadline = time.monotonic() + 120
        turn = random.randrange(len(self.apps))
        while time.monotonic() < deadline:
            app = self.app_for(turn)
            self.writes.attempts += 1
            try:
                answer = await client.post(
                    app.url + "/api/comments", json=body, headers={"Idempotency-Key": key}
                )
            except httpx.HTTPError:
                answer = None
            if answer is not None and answer.status_code in (200, 201):
                self.writes.acknowledged[text] = int(answer.json()["comment"]["id"])
                self.writes.ack_times.append(time.monotonic())
                return
            if answer is not None and 400 <= answer.status_code < 500:
                self.writes.refused.append(f"{answer.status_code} {answer.text[:200]}")
                return
            if answer is not None:
                self.writes.failed.append(
                    (
                        time.monotonic(),
                        answer.status_code,
                        answer.headers.get("retry-after"),
                        answer.text[:300],
                    )
                )
            self.writes.retries += 1
            turn += 1  # the other process next time
            await asyncio.sleep(0.2)
        self.writes.given_up.append(text)

    async def writer(self, n: int) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            i = 0
            while not self.stop_writing.is_set():
                i += 1
                await self.post(client, THREADS["busy"], f"w{n}", f"busy w{n} #{i}")
                await asyncio.sleep(self.config.write_pause)

    async def quiet_writer(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            i = 0
            while not self.stop_writing.is_set():
                i += 1
                await self.post(client, THREADS["quiet"], "q", f"quiet #{i}")
                await asyncio.sleep(self.config.quiet_every)

    async def read(self, r: Reader) -> None:
        turn = r.prefer
        while not self.stop_reading.is_set():
            app = self.app_for(turn)
            url = f"ws://127.0.0.1:{app.live_port}/ws?uri={r.uri}&since={r.last_seq}"
            try:
                async with connect(url, open_timeout=5, compression=None) as ws:
                    r.connects += 1
                    await self._take(r, ws)
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
                pass
            if not self.stop_reading.is_set():
                turn = r.prefer if self.apps[r.prefer].alive else turn + 1
                await asyncio.sleep(0.2)

    async def _take(self, r: Reader, ws: Any) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + random.uniform(0.5, 1.5) * self.config.drop_every
        while not self.stop_reading.is_set():
            wait = until - loop.time() if r.drops else 1.0
            if wait <= 0:
                return  # drop; resume with since
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), min(wait, 1.0)))
            except TimeoutError:
                continue
            if message["type"] == "reset":
                r.resets += 1
            seq = message.get("seq")
            if seq is None:
                continue
            if seq != r.last_seq + 1:
                r.out_of_order.append((r.last_seq, seq))
            if seq > r.last_seq:
                r.last_seq = seq
                r.events.append((seq, message["type"], int(message["comment"]["id"])))

    def start_load(self) -> None:
        c = self.config
        for n in range(c.writers):
            self.tasks.append(asyncio.create_task(self.writer(n)))
        self.tasks.append(asyncio.create_task(self.quiet_writer()))
        for n in range(c.busy_readers):
            self.readers.append(Reader(f"busy-{n}", THREADS["busy"], n % 2, drops=True))
        # The quiet reader never drops and stays on app-b, which is never killed: only the
        # database check (or the broker) can bring it comments posted through app-a.
        self.readers.append(Reader("quiet-always", THREADS["quiet"], 1, drops=False))
        self.readers.append(Reader("quiet-resuming", THREADS["quiet"], 0, drops=True))
        self.reader_tasks = [asyncio.create_task(self.read(r)) for r in self.readers]

    # faults

    async def phase(
        self,
        name: str,
        inject: Callable[[], None],
        heal: Callable[[], Awaitable[None] | None],
        down: float,
    ) -> None:
        phase = Phase(name)
        await asyncio.sleep(self.config.phase_seconds)
        phase.fault_at = time.monotonic()
        inject()
        await asyncio.sleep(down)
        healing = time.monotonic()
        healed = heal()
        if healed is not None:
            await healed
        phase.healed_at = time.monotonic()
        phase.restart_seconds = phase.healed_at - healing
        await asyncio.sleep(self.config.phase_seconds)
        await self.measure(phase)

    async def measure(self, phase: Phase) -> None:
        """Close a phase that just ended: its write gaps and how soon readers are complete."""
        phase.ended_at = time.monotonic()
        acks = sorted(self.writes.ack_times)
        after = [t for t in acks if t >= phase.healed_at]
        phase.first_write_after_heal = after[0] - phase.healed_at if after else None
        window = [phase.fault_at] + [t for t in acks if phase.fault_at <= t <= phase.ended_at]
        window.append(phase.ended_at)
        phase.longest_write_gap = max(b - a for a, b in itertools.pairwise(window))
        phase.readers_complete_after = await self.readers_complete_in(15.0)
        self.phases.append(phase)

    async def query(self, sql: str) -> list[Any]:
        """Rows of one read straight from the database (not through kibitz)."""
        conn = await asyncpg.connect(self.pg.url)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    async def db_last_seqs(self) -> dict[str, int]:
        rows = await self.query("SELECT uri, last_seq FROM threads")
        return {r["uri"]: int(r["last_seq"]) for r in rows}

    async def readers_complete_in(self, timeout: float) -> float | None:
        """Seconds until every reader has every event the database holds now (or None)."""
        started = time.monotonic()
        target = await self.db_last_seqs()
        while time.monotonic() - started < timeout:
            if all(r.last_seq >= target.get(r.uri, 0) for r in self.readers):
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        return None

    async def faults(self) -> None:
        c = self.config
        a = self.apps[0]
        await self.phase("kill -9 of an app process", a.kill, a.start, c.down_seconds)
        await self.phase("kill -9 of Redis", self.redis.kill, self.redis.start, c.down_seconds)
        await self.phase(
            "kill -9 of PostgreSQL (all processes)", self.pg.kill, self.pg.start, c.down_seconds
        )
        await self.phase(
            f"Redis hung (SIGSTOP {c.hang_seconds:g} s)",
            self.redis.pause,
            self.redis.resume,
            c.hang_seconds,
        )
        for name, proxy in (("PostgreSQL", self.pg_proxy), ("Redis", self.redis_proxy)):
            assert proxy is not None
            cutter = Cutter(proxy)
            await self.phase(
                f"{name} connections cut mid-query every 0.4 s, +20 ms latency",
                cutter.start,
                cutter.stop,
                c.down_seconds,
            )

    # proof

    async def check(self, seconds: float) -> Result:
        comments = await self.query("SELECT id, text, status FROM comments")
        events = await self.query(
            "SELECT t.uri, e.seq, e.type, e.comment_id FROM events e "
            "JOIN threads t ON t.id = e.thread_id ORDER BY t.uri, e.seq"
        )
        texts = Counter(r["text"] for r in comments)
        acked = self.writes.acknowledged
        lost = sum(1 for text in acked if texts[text] == 0)
        doubled = sum(n - 1 for n in texts.values() if n > 1)
        by_uri: dict[str, list[tuple[int, str, int]]] = {}
        for e in events:
            by_uri.setdefault(e["uri"], []).append((e["seq"], e["type"], e["comment_id"]))
        readers: dict[str, dict[str, Any]] = {}
        for r in self.readers:
            want = by_uri.get(r.uri, [])
            problem = ""
            if r.events != want:
                missing = {e[0] for e in want} - {e[0] for e in r.events}
                problem = f"{len(missing)} missing of {len(want)}"
            elif r.out_of_order:
                problem = f"out of order: {r.out_of_order[:5]}"
            elif r.resets:
                problem = f"{r.resets} reset(s)"
            readers[r.name] = {
                "uri": r.uri,
                "events": len(r.events),
                "connects": r.connects,
                "complete": not problem,
                "problem": problem,
            }
        return Result(
            config=asdict(self.config),
            acknowledged=len(acked),
            stored=len(comments),
            lost=lost,
            doubled=doubled,
            unacknowledged_stored=sum(1 for t in texts if t not in acked),
            attempts=self.writes.attempts,
            retries=self.writes.retries,
            given_up=len(self.writes.given_up),
            refused=len(self.writes.refused),
            server_errors=sum(1 for _, status, _, _ in self.writes.failed if status != 503),
            readers=readers,
            phases=[asdict(p) for p in self.phases],
            seconds=seconds,
        )

    async def run(self) -> Result:
        started = time.monotonic()
        try:
            await self.setup()  # inside: a half-made setup is torn down too (a loop mount)
            self.start_load()
            await self.faults()
            self.stop_writing.set()
            await asyncio.gather(*self.tasks)
            await self.readers_complete_in(self.config.settle_timeout)
            self.stop_reading.set()
            await asyncio.gather(*self.reader_tasks)
            return await self.check(time.monotonic() - started)
        finally:
            self.stop_writing.set()
            self.stop_reading.set()
            for task in [*self.tasks, *getattr(self, "reader_tasks", [])]:
                task.cancel()
            self.teardown()
            for proxy in (self.pg_proxy, self.redis_proxy):
                if proxy is not None:
                    await proxy.stop()


class EmbeddedRun(Run):
    """The embedded default: one process on SQLite, its data directory on a file system of
    the run's own (:class:`~tests.faults.services.Volume`).

    Phases: kill -9 in the middle of writes (twice; writers retry with their key until the
    process is back, readers resume on it), then the file system filled to the last block,
    then its files made to refuse writes, each given back after a while, under load and
    without restarting kibitz.
    """

    def __init__(self, config: Config, workdir: Path) -> None:
        super().__init__(config, workdir)
        self.volume = Volume(workdir, config.volume_mb)
        self.database = self.volume.path / "kibitz.db"

    async def setup(self) -> None:
        self.volume.mount()
        env = {
            "KIBITZ_DATABASE_URL": f"sqlite:///{self.database}",
            "KIBITZ_DATA_DIR": str(self.volume.path),
            "KIBITZ_SECRET_KEY": "fault-suite",
            "KIBITZ_MODERATION": "none",
            "KIBITZ_POST_RATE": "off",
            "KIBITZ_MIN_FILL_SECONDS": "0",
            "KIBITZ_DUPLICATE_WINDOW": "0",
        }
        self.apps = [App("embedded", env, self.workdir)]  # its log stays off the volume
        for slug in THREADS:
            subprocess.run(
                [sys.executable, "-m", "server", "post", "add", "--slug", slug, "--title", slug],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                check=True,
                capture_output=True,
            )
        await self.apps[0].start()

    def teardown(self) -> None:
        for app in self.apps:
            app.stop()
        self.volume.close()

    async def query(self, sql: str) -> list[Any]:
        with contextlib.closing(sqlite3.connect(self.database, timeout=30)) as conn:
            conn.row_factory = sqlite3.Row
            return list(conn.execute(sql).fetchall())

    def start_load(self) -> None:
        super().start_load()
        for r in self.readers:
            r.prefer = 0

    async def faults(self) -> None:
        app = self.apps[0]
        for n in (1, 2):
            await self.phase(
                f"kill -9 of the embedded process during writes ({n})",
                app.kill,
                app.start,
                self.config.down_seconds,
            )
        await self.storage_phase("disk full", self.volume.fill, self.volume.free)
        await self.storage_phase(
            "read-only data directory", self.volume.refuse_writes, self.volume.take_writes
        )

    async def storage_phase(
        self, name: str, inject: Callable[[], object], heal: Callable[[], object]
    ) -> None:
        """The storage refuses writes under load, for ``down_seconds`` after the first 503.

        A full disk refuses only once SQLite's log must grow, so the down time counts from
        the first refused write. Meanwhile a watcher reads the thread, the post page and
        /healthz, and a reader of the page sends the form, and sends it again after.
        """
        app, phase, refusal = self.apps[0], Phase(name), Refusal()
        phase.storage = refusal
        pid = app.proc.pid if app.proc is not None else None
        await asyncio.sleep(self.config.phase_seconds)
        failed_before = len(self.writes.failed)
        refusing, healed, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
        seen: list[tuple[float, str, int]] = []
        watcher = asyncio.create_task(self.watch(app, seen, stop))
        form = asyncio.create_task(self.send_form(app, name, refusal, refusing, healed))
        phase.fault_at = time.monotonic()
        await asyncio.to_thread(inject)
        deadline = phase.fault_at + 60
        while time.monotonic() < deadline and not any(
            status == 503 for _, status, _, _ in self.writes.failed[failed_before:]
        ):
            await asyncio.sleep(0.02)
        refused_at = next(
            (t for t, status, _, _ in self.writes.failed[failed_before:] if status == 503), None
        )
        if refused_at is not None:
            refusal.first_refused_after = refused_at - phase.fault_at
            refusing.set()
        await asyncio.sleep(self.config.down_seconds)
        healing = time.monotonic()
        await asyncio.to_thread(heal)
        phase.healed_at = time.monotonic()
        phase.restart_seconds = phase.healed_at - healing
        healed.set()
        await asyncio.sleep(self.config.phase_seconds)
        stop.set()
        await asyncio.gather(watcher, form)
        await self.measure(phase)
        self.judge(refusal, phase, seen, self.writes.failed[failed_before:])
        refusal.same_process = app.alive and app.proc is not None and app.proc.pid == pid

    def judge(
        self,
        refusal: Refusal,
        phase: Phase,
        seen: list[tuple[float, str, int]],
        failed: list[tuple[float, int, str | None, str]],
    ) -> None:
        """What the writers and the watcher saw, against what a storage refusal promises."""
        for _, status, retry_after, body in failed:
            if status != 503:
                refusal.server_errors.append(f"POST {status}: {body[:120]}")
                continue
            refusal.refused += 1
            refusal.without_retry_after += not (retry_after and int(retry_after) > 0)
            refusal.unclear += STORAGE_MESSAGE not in body
        for when, what, status in seen:
            if what == "health":
                if status == 503 and when < phase.healed_at:
                    refusal.health_down = True
                if status == 200 and when >= phase.healed_at and refusal.health_up_after is None:
                    refusal.health_up_after = when - phase.healed_at
                if status not in (200, 503):
                    refusal.server_errors.append(f"/healthz {status}")
                continue
            refusal.reads += 1
            if status != 200:
                refusal.reads_failed.append(f"{what} {status}")

    async def watch(
        self, app: App, seen: list[tuple[float, str, int]], stop: asyncio.Event
    ) -> None:
        """Read the thread, the post page and /healthz every 0.1 s, noting each status."""
        paths = {
            "thread": f"/api/comments?uri={THREADS['busy']}",
            "page": THREADS["busy"],
            "health": "/healthz",
        }
        async with httpx.AsyncClient(base_url=app.url, timeout=5) as client:
            while not stop.is_set():
                for what, path in paths.items():
                    try:
                        status = (await client.get(path)).status_code
                    except httpx.HTTPError:
                        status = 0
                    seen.append((time.monotonic(), what, status))
                await asyncio.sleep(0.1)

    async def send_form(
        self,
        app: App,
        phase: str,
        refusal: Refusal,
        refusing: asyncio.Event,
        healed: asyncio.Event,
    ) -> None:
        """A reader sends the post page's form while writes are refused, then again after.

        On a full disk a write can still get through now and then (SQLite's log had room
        for it): such a form is a comment like any other, and the reader writes another,
        until one is refused.
        """
        path = f"{THREADS['busy']}/comments"
        async with httpx.AsyncClient(base_url=app.url, timeout=5) as client:
            await refusing.wait()
            kept: dict[str, str] = {}
            for n in itertools.count(1):
                if healed.is_set():
                    return
                text = f"the form during {phase} #{n}"
                page = await client.get(THREADS["busy"])
                person = {"author": "Form", "email": "form@example.org", "text": text}
                values = {**form_values(parse(page.text)), **person}
                answer = await client.post(path, data=values)
                if answer.status_code == 303:
                    self.form_acknowledged(text, answer)
                    continue
                if answer.status_code == 503:
                    kept = form_values(parse(answer.text))
                refusal.form_kept = (
                    answer.status_code == 503
                    and int(answer.headers.get("retry-after", "0")) > 0
                    and STORAGE_MESSAGE in answer.text
                    and all(kept.get(name) == value for name, value in person.items())
                    and kept.get("form_token") == values["form_token"]
                )
                break
            if not refusal.form_kept:
                return
            await healed.wait()
            deadline = time.monotonic() + 30
            while (sent := await client.post(path, data=kept)).status_code == 503:
                if time.monotonic() > deadline:
                    return
                await asyncio.sleep(0.2)
            again = await client.post(path, data=kept)
            refusal.form_posted_once = (
                sent.status_code == 303
                and again.status_code == 303
                and again.headers.get("location") == sent.headers.get("location")
            )
            self.form_acknowledged(kept["text"], sent)

    def form_acknowledged(self, text: str, answer: httpx.Response) -> None:
        """A form's 303 acknowledges its comment, as a 2xx does a POST to the API."""
        location = answer.headers.get("location", "")
        if answer.status_code == 303 and "#comment-" in location:
            self.writes.acknowledged[text] = int(location.rsplit("#comment-", 1)[1])
            self.writes.ack_times.append(time.monotonic())


async def run(config: Config, *, embedded: bool = False) -> Result:
    with tempfile.TemporaryDirectory(prefix="kibitz-faults-") as tmp:
        kind = EmbeddedRun if embedded else Run
        return await kind(config, Path(tmp)).run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help="the long run (make faults)")
    parser.add_argument("--json", help="write the result to this file as JSON")
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="one process on SQLite instead (kill -9, disk full, read-only data directory)",
    )
    args = parser.parse_args()
    result = asyncio.run(run(LONG if args.long else SHORT, embedded=args.embedded))
    print(result.table())
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(result), indent=2))
    return 0 if result.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
