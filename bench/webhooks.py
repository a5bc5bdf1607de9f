"""Webhook delivery under the POST benchmark's load: latency, throughput, and that nothing is lost.

    .venv/bin/python bench/webhooks.py [--only sqlite,postgres] [--duration 10] [--rounds 2]
                                       [--serial 100]

Three processes, as a site runs them: ``kibitz serve`` (SQLite in one process; PostgreSQL
``--workers 2`` with Redis, started by bench/wrk.py's ``start_kibitz``), three receivers in a
process of their own (bench/webhook_receiver.py: each verifies every signature with the
``standardwebhooks`` library and records when the message was in hand), and wrk.

1. ``--serial`` comments, one at a time 50 ms apart, with three ``comment.created`` endpoints
   registered through ``POST /api/webhooks``: the latency of a queue that is idle.
2. ``--rounds`` times (webhooks off, webhooks on), every other round in reverse order: ``wrk -t1
   -c16`` posts for ``--duration`` seconds exactly as bench/wrk.py's "post 100 threads" does
   (bench/wrk/post.lua through bench/wrk/post_acks.lua, which also notes each acknowledged
   comment's id and answer time; 100 threads of 10 comments; every POST from its own client
   address, ``KIBITZ_TRUSTED_PROXIES=127.0.0.1``; ``KIBITZ_MODERATION=none``). "On" registers
   the three endpoints before the load, reads the backlog (``GET /api/webhooks``, "waiting")
   when the load stops, waits until every acknowledged comment reached every receiver and
   the queue is empty, and deletes the endpoints; "off" runs with no endpoint at all.

Latency is taken two ways for each message's first arrival at a receiver: from the outbox
row's ``created`` (written by the last statements of the transaction that commits the
comment, so a little before the commit: an upper bound) and from wrk getting the POST's 201
(after the commit: a lower bound). Checked at the end, per endpoint: every signature
verified; every acknowledged comment of the "on" phases arrived, exactly once after
de-duplicating by ``webhook-id`` (duplicates, which at-least-once allows, are counted); none
of the "off" rounds' comments arrived; and each thread's messages arrived in commit order
(the order of their outbox rows, which are written under the thread's lock). Exits 1 when a
check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import peer, wrk  # noqa: E402

ENDPOINTS = 3
POST_THREADS = {f"/bench/p-{i}": 10 for i in range(100)}  # as bench/wrk.py's POST scenario
SERIAL_OFFSET = 15_000_000  # client addresses of the serial phase, apart from wrk's rounds
STAFF = "bench-ops"


@dataclass
class Round:
    """One wrk run, webhooks on or off."""

    on: bool
    run: wrk.Run
    started: float  # wall clock
    ended: float
    acked: dict[int, float]  # comment id → when wrk had the 201 (wall clock)
    cpu: float  # server CPU seconds from the load's start to the queue's end
    receiver_cpu: float = 0.0
    backlog: list[int] = field(default_factory=list)  # waiting per endpoint as the load ended
    drained: float = 0.0  # seconds after the load until every message was in hand

    @property
    def cpu_per_post(self) -> float:
        """Server CPU ms per acknowledged POST ("on": the delivery of its messages included)."""
        return self.cpu * 1000 / max(1, len(self.acked))


@dataclass
class Site:
    """A running kibitz with its receivers and a staff token."""

    server: peer.Server
    receiver: subprocess.Popen[bytes]
    database_url: str
    ports: list[int]
    secrets: list[str]
    token: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def staff(self) -> httpx.Client:
        auth = {"authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, headers=auth, timeout=30)

    def register(self) -> list[int]:
        with self.staff() as client:
            ids = []
            for port, secret in zip(self.ports, self.secrets, strict=True):
                made = client.post(
                    "/api/webhooks",
                    json={
                        "url": f"http://127.0.0.1:{port}/hook",
                        "events": ["comment.created"],
                        "secret": secret,
                    },
                )
                made.raise_for_status()
                ids.append(made.json()["id"])
            return ids

    def unregister(self, ids: list[int]) -> None:
        with self.staff() as client:
            for endpoint in ids:
                client.delete(f"/api/webhooks/{endpoint}").raise_for_status()

    def waiting(self) -> list[int]:
        with self.staff() as client:
            answer = client.get("/api/webhooks")
            answer.raise_for_status()
            return [w["waiting"] for w in answer.json()["webhooks"]]

    def received(self) -> dict[str, list[list[Any]]]:
        got: dict[str, list[list[Any]]] = httpx.get(
            f"http://127.0.0.1:{self.ports[0]}/records", timeout=60
        ).json()
        return got

    def counts(self) -> list[int]:
        got = httpx.get(f"http://127.0.0.1:{self.ports[0]}/counts", timeout=10).json()["counts"]
        return [got[str(p)] for p in self.ports]


# -- starting -----------------------------------------------------------------------------------


def start_receivers(work: Path) -> tuple[subprocess.Popen[bytes], list[int], list[str]]:
    ports = [peer.free_port() for _ in range(ENDPOINTS)]
    keys = ["whsec_" + base64.b64encode(secrets.token_bytes(32)).decode() for _ in ports]
    log = work / "receivers.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "webhook_receiver.py"),
            *(f"{p}:{k}" for p, k in zip(ports, keys, strict=True)),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    peer.wait_until_up(f"http://127.0.0.1:{ports[0]}/counts", proc, log)
    return proc, ports, keys


def staff_token(database_url: str, work: Path) -> str:
    """An admin and an API token, made with the CLI as an operator would."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KIBITZ_DATABASE_URL": database_url,
        "KIBITZ_DATA_DIR": str(work / "cli"),
        "KIBITZ_SECRET_KEY": "bench-" + "x" * 32,
    }
    kibitz = [sys.executable, "-m", "server"]
    subprocess.run(
        [*kibitz, "user", "add", STAFF, "--role", "admin", "--password-stdin"],
        input=b"a-long-bench-password\n",
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    made = subprocess.run(
        [*kibitz, "token", "add", STAFF], env=env, cwd=ROOT, check=True, capture_output=True
    )
    return made.stdout.decode().strip().splitlines()[-1]


def start_site(backend: str, work: Path) -> Site:
    receiver, ports, keys = start_receivers(work)
    env = {"KIBITZ_WEBHOOK_ALLOW_PRIVATE": "true"}
    if backend == "sqlite":
        url = f"sqlite:///{work / 'kibitz.db'}"
        server = wrk.start_kibitz("kibitz-sqlite", url, work, ROOT, env=env)
    else:
        name = work.name
        url = peer._with_database(peer.POSTGRES, name)
        env |= {"KIBITZ_REDIS_URL": peer.REDIS, "KIBITZ_REDIS_PREFIX": f"wh-{name}"}
        server = wrk.start_kibitz("kibitz-pg", url, work, ROOT, "--workers", "2", env=env)
    server.seed(POST_THREADS)
    server.settle()
    return Site(server, receiver, url, ports, keys, staff_token(url, work))


# -- phases -------------------------------------------------------------------------------------


def serial(site: Site, comments: int) -> dict[int, float]:
    """One comment at a time, 50 ms apart, with the endpoints registered: an idle queue."""
    acked: dict[int, float] = {}
    endpoints = site.register()
    before = site.counts()
    with httpx.Client(base_url=site.url, headers={"origin": site.url}, timeout=30) as client:
        for i in range(comments):
            n = SERIAL_OFFSET + i
            answer = client.post(
                "/api/comments",
                json={
                    "uri": f"/bench/p-{i % 100}",
                    "author": f"Reader {n}",
                    "email": f"reader{n}@example.org",
                    "text": f"Comment {n}: one at a time.",
                },
                headers={"x-forwarded-for": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"},
            )
            at = time.time()
            answer.raise_for_status()
            acked[answer.json()["comment"]["id"]] = at
            time.sleep(0.05)
    wait_until_delivered(site, acked, before, 60)
    site.unregister(endpoints)
    return acked


def wait_until_delivered(
    site: Site, acked: dict[int, float], before: list[int], timeout: float
) -> None:
    """Until each receiver has at least one message per acknowledged comment and the queue is
    empty: the counts are cheap to poll, the queue's status is read to confirm."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = site.counts()
        if all(c - b >= len(acked) for c, b in zip(counts, before, strict=True)):
            if not any(site.waiting()):
                return
        time.sleep(0.05)
    raise SystemExit(f"the queue did not empty within {timeout:.0f} s")


def load(site: Site, on: bool, seconds: float, number: int, work: Path) -> Round:
    acks = work / f"acks-{number}.txt"
    acks.touch()
    endpoints = site.register() if on else []
    before = site.counts()
    cpu_before = wrk.cpu_seconds(site.server.proc.pid)
    receiver_before = wrk.cpu_seconds(site.receiver.pid)
    started = time.time()
    run = wrk.wrk(
        site.server,
        "/",
        seconds,
        [
            "post_acks.lua",
            "kibitz",
            "/bench/p",
            "100",
            str(number * 1_000_000),
            site.url,
            str(acks),
        ],
    )
    ended = time.time()
    acked = {}
    for line in acks.read_text().splitlines():
        comment, at = line.split()
        acked[int(comment)] = float(at)
    result = Round(on, run, started, ended, acked, 0.0)
    if on:
        result.backlog = site.waiting()
        wait_until_delivered(site, acked, before, 600)
        result.drained = time.time() - ended
        site.unregister(endpoints)
    result.cpu = wrk.cpu_seconds(site.server.proc.pid) - cpu_before
    result.receiver_cpu = wrk.cpu_seconds(site.receiver.pid) - receiver_before
    return result


async def outbox_rows(database_url: str) -> dict[tuple[int, str], tuple[int, float]]:
    """(receiver port, webhook-id) → (outbox row id, row created as epoch seconds)."""
    from db.models import as_datetime
    from tests.helpers.imports import rows

    found = await rows(
        database_url,
        "SELECT d.id, d.message_id, d.created, e.url FROM webhook_deliveries d "
        "JOIN webhook_endpoints e ON e.id = d.endpoint_id",
    )
    return {
        (urllib.parse.urlsplit(r["url"]).port or 0, r["message_id"]): (
            r["id"],
            as_datetime(r["created"]).timestamp(),
        )
        for r in found
    }


# -- checking and reporting ---------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


@dataclass
class Arrival:
    port: int
    webhook_id: str
    comment: int
    uri: str
    at: float


def check(
    site: Site,
    records: list[Arrival],
    refused: list[list[Any]],
    rows: dict[tuple[int, str], tuple[int, float]],
    delivered_to: set[int],
    never: set[int],
) -> list[str]:
    """What went wrong, per endpoint; empty when everything holds."""
    problems = [f"{len(refused)} messages failed verification: {refused[:3]}"] if refused else []
    for port in site.ports:
        mine = [r for r in records if r.port == port]
        first: dict[str, Arrival] = {}
        for r in mine:
            first.setdefault(r.webhook_id, r)
        duplicates = len(mine) - len(first)
        per_comment = Counter(r.comment for r in first.values())
        twice = [c for c, n in per_comment.items() if n > 1]
        missing = delivered_to - per_comment.keys()
        stray = never & per_comment.keys()
        unknown = [w for w in first if (port, w) not in rows]
        lines: dict[str, list[int]] = defaultdict(list)
        for r in first.values():
            if (port, r.webhook_id) in rows:
                lines[r.uri].append(rows[(port, r.webhook_id)][0])
        disorder = sum(1 for ids in lines.values() for a, b in itertools.pairwise(ids) if b < a)
        print(
            f"  receiver :{port}: {len(mine)} messages, {len(first)} distinct webhook-ids, "
            f"{duplicates} duplicates; acknowledged comments missing {len(missing)}, "
            f"a comment under two ids {len(twice)}, from an 'off' round {len(stray)}, "
            f"out of commit order {disorder} (over {len(lines)} threads)"
        )
        if missing or twice or stray or disorder or unknown:
            problems.append(
                f":{port}: missing {sorted(missing)[:5]}, twice {twice[:5]}, "
                f"off {sorted(stray)[:5]}, disorder {disorder}, unknown ids {unknown[:3]}"
            )
    return problems


def throughput(
    r: Round, arrivals: Iterable[Arrival], ports: list[int]
) -> tuple[list[float], float]:
    """Deliveries/s per endpoint while wrk ran; and of the round's comments, per endpoint,
    over the load and the drain."""
    window = r.ended - r.started
    during = [0] * len(ports)
    mine = 0
    for a in arrivals:
        if r.started <= a.at <= r.ended:
            during[ports.index(a.port)] += 1
        mine += a.comment in r.acked
    return [d / window for d in during], mine / len(ports) / (window + r.drained)


def report_backend(
    backend: str, site: Site, idle: dict[int, float], rounds: list[Round]
) -> tuple[bool, str]:
    got = site.received()
    records = [Arrival(*a) for a in got["records"]]
    rows = asyncio.run(outbox_rows(site.database_url))
    on = [r for r in rounds if r.on]
    off = [r for r in rounds if not r.on]
    delivered_to = set(idle) | {c for r in on for c in r.acked}
    never = {c for r in off for c in r.acked}
    print(f"\n{backend}: checks")
    problems = check(site, records, got["refused"], rows, delivered_to, never)
    first: dict[tuple[int, str], Arrival] = {}
    for a in records:
        first.setdefault((a.port, a.webhook_id), a)

    def latencies(acked: dict[int, float]) -> tuple[list[float], list[float]]:
        from_row, from_answer = [], []
        for key, a in first.items():
            if a.comment in acked and key in rows:
                from_row.append((a.at - rows[key][1]) * 1000)
                from_answer.append((a.at - acked[a.comment]) * 1000)
        return from_row, from_answer

    loaded: dict[int, float] = {c: t for r in on for c, t in r.acked.items()}
    print(f"\n{backend}: figures")
    for label, acked in (("idle, one at a time", idle), ("under load", loaded)):
        from_row, from_answer = latencies(acked)
        print(
            f"  latency {label} ({len(from_row)} messages): outbox row → receiver "
            f"p50 {pct(from_row, 0.5):.1f} ms p99 {pct(from_row, 0.99):.1f} ms; "
            f"POST answered → receiver p50 {pct(from_answer, 0.5):.1f} ms "
            f"p99 {pct(from_answer, 0.99):.1f} ms"
        )
    for r in rounds:
        line = (
            f"  {'on ' if r.on else 'off'}: {r.run.rate:6.0f} POST/s "
            f"(p50 {r.run.p50:.0f} ms, p99 {r.run.p99:.0f} ms, {r.run.bad} failed, "
            f"{len(r.acked)} acknowledged), server CPU {r.cpu_per_post:.2f} ms/POST"
        )
        if r.on:
            rates, overall = throughput(r, first.values(), site.ports)
            total = sum(1 for a in first.values() if a.comment in r.acked)
            line += (
                f" incl. delivery; deliveries/s per endpoint during the load "
                f"{'/'.join(f'{d:.0f}' for d in rates)}, over load + drain "
                f"{overall:.0f}; backlog at the end "
                f"{'/'.join(map(str, r.backlog))}, drained {r.drained:.2f} s later; receivers' "
                f"CPU {r.receiver_cpu * 1000 / max(1, total):.2f} ms/delivery"
            )
        print(line)
    rate_on = statistics.median(r.run.rate for r in on)
    rate_off = statistics.median(r.run.rate for r in off)
    cpu_on = statistics.median(r.cpu_per_post for r in on)
    cpu_off = statistics.median(r.cpu_per_post for r in off)
    row, answer = latencies(loaded)
    idle_row, _ = latencies(idle)
    during = statistics.median(
        statistics.mean(throughput(r, first.values(), site.ports)[0]) for r in on
    )
    overall = statistics.median(throughput(r, first.values(), site.ports)[1] for r in on)
    table = (
        f"| {backend} | {rate_off:.0f} | {rate_on:.0f} | {cpu_off:.2f} → {cpu_on:.2f} | "
        f"{during:.0f} / {overall:.0f} | {pct(row, 0.5):.1f} / {pct(row, 0.99):.0f} | "
        f"{pct(answer, 0.5):.1f} / {pct(answer, 0.99):.0f} | "
        f"{pct(idle_row, 0.5):.1f} / {pct(idle_row, 0.99):.1f} | "
        f"{' / '.join(str(sum(r.backlog)) for r in on)} | "
        f"{' / '.join(f'{r.drained:.1f}' for r in on)} s |"
    )
    for p in problems:
        print(f"CHECK FAILED: {p}")
    return not problems, table


def bench(backend: str, args: argparse.Namespace, root: Path) -> tuple[bool, str]:
    work = root / f"kibitz_wh_{uuid.uuid4().hex[:8]}"
    work.mkdir()
    if backend == "postgres":
        asyncio.run(peer._pg_admin(f'CREATE DATABASE "{work.name}"'))
    site = None
    try:
        site = start_site(backend, work)
        print(f"{backend}: {args.serial} comments one at a time …", flush=True)
        idle = serial(site, args.serial)
        rounds: list[Round] = []
        for round_ in range(args.rounds):
            for on in (False, True) if round_ % 2 == 0 else (True, False):
                time.sleep(1)
                done = load(site, on, args.duration, len(rounds) + 1, work)
                rounds.append(done)
                print(
                    f"  webhooks {'on ' if on else 'off'} {done.run.rate:6.0f} POST/s"
                    + (f", drained {done.drained:.2f} s after the load" if on else ""),
                    flush=True,
                )
        return report_backend(backend, site, idle, rounds)
    finally:
        if site is not None:
            site.server.stop()
            site.receiver.terminate()
            site.receiver.wait(10)
        if backend == "postgres":
            asyncio.run(peer._pg_admin(f'DROP DATABASE IF EXISTS "{work.name}" WITH (FORCE)'))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="(off, on) pairs per backend")
    parser.add_argument("--serial", type=int, default=100, help="comments one at a time")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    print(f"machine: {peer.machine()}")
    peer.PEER.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="kibitz-webhooks-", dir=peer.PEER))
    results = []
    try:
        for backend in args.only.split(","):
            results.append(bench(backend, args, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"\nwrk -t1 -c16 -d{args.duration:g}s, {args.rounds} rounds of (off, on) alternated, "
        f"3 endpoints; medians over rounds, latency percentiles over every message\n\n"
        "| backend | POST/s off | POST/s on | server CPU ms/POST off → on | deliveries/s per "
        "endpoint: during the load / over load and drain | outbox row → receiver p50 / p99 "
        "ms | POST answered → receiver p50 / p99 ms | idle: outbox row → receiver p50 / p99 "
        "ms | backlog at the end (3 endpoints) | drained after |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for _, table in results:
        print(table)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
