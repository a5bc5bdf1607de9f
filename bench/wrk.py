"""The reader's paths under wrk: kibitz beside Isso 0.14 (and an older kibitz), in one run.

    .venv/bin/python bench/wrk.py [--duration 5] [--rounds 3] [--only isso,sqlite,postgres]
                                  [--baseline REV]

Load comes from ``wrk -t1 -c16`` (the Debian package), a C load generator that costs far less
CPU than either server, so on a 2-core machine the servers are what is measured; POST bodies
come from the Lua scripts in bench/wrk/. bench/load.py stays for what wrk cannot do
(websockets, bench/fanout.py).

Servers: Isso under gunicorn with 2 workers (installed into bench/.peer/ on first use, see
bench/peer.py), kibitz on SQLite in one process, optionally kibitz on PostgreSQL + Redis with
``--workers 2``, and with ``--baseline REV`` the kibitz of an older commit (its files taken
with ``git archive``) on SQLite, seeded with the same data, to show before and after in one
run. kibitz runs with its default settings except moderation off (Isso's is off too) and
``KIBITZ_TRUSTED_PROXIES=127.0.0.1``: every POST comes from its own client address in
X-Forwarded-For, as a site's readers would, so the per-address rate limit is in the path but
never the limit.

Each scenario runs every server in turn, ``--rounds`` times (every other round in reverse
order), ``--duration`` seconds each; the figure is the median over rounds, and every ratio
compares figures of the same run. CPU per request is the servers' own CPU time (all their
processes) over the requests they answered: less noisy than req/s on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import peer  # noqa: E402

SCRIPTS = ROOT / "bench" / "wrk"
TICKS = os.sysconf("SC_CLK_TCK")

# The data, the same in every server: threads read, counted and posted to.
THREADS = {
    "/bench/t10": 10,
    "/bench/t100": 100,
    "/bench/t1000": 1000,
    "/bench/u1000": 1000,
    **{f"/bench/f{i}": 10 for i in range(10)},
    **{f"/bench/p-{i}": 10 for i in range(100)},  # POST spreads over these
}
BIG = {"/bench/t5000": 5000}  # kibitz only: POST to a big thread
PAGE_SLUG, PAGE_COMMENTS = "bench100", 100
COUNT_URIS = [
    "/bench/t1000",
    "/bench/u1000",
    "/bench/t100",
    "/bench/t10",
    "/bench/f0",
    "/bench/f1",
    "/bench/f2",
    "/bench/none-0",  # unknown: nobody commented there
    "/bench/none-1",
    "/bench/none-2",
]


@dataclass
class Run:
    """One wrk run against one server."""

    requests: int
    bad: int  # non-2xx/3xx answers and socket errors
    seconds: float
    p50: float  # ms
    p99: float
    cpu: float  # server CPU seconds during the run

    @property
    def rate(self) -> float:
        return max(0, self.requests - self.bad) / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        good = self.requests - self.bad
        return self.cpu * 1000 / good if good > 0 else float("nan")


@dataclass
class Figure:
    runs: list[Run] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)

    @property
    def rate(self) -> float:
        return self.median("rate")


# -- servers ------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (uvicorn's or gunicorn's workers)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICKS
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(cpu_seconds(int(child)) for child in children)


async def _seed_kibitz(database_url: str, threads: dict[str, int]) -> None:
    """As bench/peer.py seeds, but each thread's comments spread over the past weeks, ten
    minutes apart, as a thread that grew to that size would be (what a POST checks against
    its thread, such as the duplicate window, looks only at recent comments)."""
    from db.comments import CommentStore, NewComment
    from db.database import connect
    from db.migrate import migrate
    from db.models import now
    from server.discussion.markup import render_comment

    db = await connect(database_url, readers=1)
    try:
        await migrate(db)
        store = CommentStore(db)
        start = now()
        for uri, n in threads.items():
            batch = []
            for i in range(n):
                text = peer.comment_text(uri, i)
                batch.append(
                    NewComment(
                        author=f"Reader {i}",
                        email=f"reader{i}@example.org",
                        website=None,
                        text=text,
                        html=render_comment(text),
                        status="approved",
                        address="127.0.0.1",
                        created=start - timedelta(minutes=10 * (n - i)),
                    )
                )
            await store.add_many(uri, batch, title=uri)
    finally:
        await db.close()


async def _seed_posts(database_url: str) -> None:
    """A post with PAGE_COMMENTS comments, for the post page against its own JSON."""
    from db.database import connect
    from db.posts import PostStore

    db = await connect(database_url, readers=1)
    try:
        await PostStore(db).add(
            slug=PAGE_SLUG, title="A post", author="Admin", body_html="<p>The post.</p>"
        )
    finally:
        await db.close()
    await _seed_kibitz(database_url, {f"/posts/{PAGE_SLUG}": PAGE_COMMENTS})


def seed_with(source: Path, database_url: str, threads: dict[str, int], posts: bool) -> None:
    """Seed with the stores (and migrations) of the kibitz at ``source``, in a process of its
    own: an older commit's database must not get this commit's migrations."""
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--seed",
            json.dumps({"source": str(source), "url": database_url, "threads": threads}),
            *(["--posts"] if posts else []),
        ],
        check=True,
    )


def start_kibitz(
    name: str, database_url: str, work: Path, source: Path, *extra: str, env: dict[str, str]
) -> peer.Server:
    port = peer.free_port()
    seed_with(source, database_url, {}, posts=False)  # migrate before any worker starts
    log = work / f"{name}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port), *extra],
        cwd=source,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "PYTHONPATH": str(source),
            "KIBITZ_DATABASE_URL": database_url,
            "KIBITZ_DATA_DIR": str(work / name),
            "KIBITZ_SECRET_KEY": "bench-" + "x" * 32,
            "KIBITZ_MODERATION": "none",
            "KIBITZ_TRUSTED_PROXIES": "127.0.0.1",
            "KIBITZ_PUBLIC_URL": f"http://127.0.0.1:{port}",
            **env,
        },
    )
    peer.wait_until_up(f"http://127.0.0.1:{port}/healthz", proc, log)

    def seed(threads: dict[str, int]) -> None:
        seed_with(source, database_url, threads, posts=False)

    def settle() -> None:
        seed_with(source, database_url, {}, posts=True)
        peer._settle_kibitz(database_url)

    return peer.Server(name, port, proc, seed, settle)


def checkout(rev: str, into: Path) -> Path:
    """The files of commit ``rev`` (no .git), to run the kibitz of that commit."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev],
        check=True,
        capture_output=True,
    ).stdout
    tar = into / "source.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as files:
        files.extractall(into, filter="data")
    tar.unlink()
    return into


# -- wrk ----------------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(found.group(1)) * _UNITS[found.group(2)] if found else float("nan")


def wrk(server: peer.Server, path: str, seconds: float, script: list[str] | None = None) -> Run:
    """One ``wrk -t1 -c16`` run; ``script`` is a Lua file under bench/wrk/ and its arguments."""
    command = ["wrk", "-t1", "-c16", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    if script:
        command += ["-s", str(SCRIPTS / script[0])]
    command.append(f"http://127.0.0.1:{server.port}{path}")
    if script:
        command += ["--", *script[1:]]
    before = cpu_seconds(server.proc.pid)
    started = time.monotonic()
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(server.proc.pid) - before
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if total is None:
        raise SystemExit(f"wrk said:\n{out}")
    bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if errors:  # gunicorn closes each connection; wrk counts some of those closes as reads
        bad += int(errors.group(1)) + int(errors.group(3)) + int(errors.group(4))
    seconds = _ms(total.group(2) + total.group(3)) / 1000 or elapsed
    p50 = re.search(r"50%\s+([\d.]+\w+)", out)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    return Run(
        int(total.group(1)),
        bad,
        seconds,
        _ms(p50.group(1)) if p50 else float("nan"),
        _ms(p99.group(1)) if p99 else float("nan"),
        cpu,
    )


# -- scenarios ----------------------------------------------------------------------------------

Job = Callable[[peer.Server, float, int], Run]  # server, seconds, run number → Run


def read(uri: str) -> Job:
    def job(server: peer.Server, seconds: float, n: int) -> Run:
        if server.name == "isso":
            return wrk(server, f"/?uri={quote(uri)}", seconds)
        return wrk(server, f"/api/comments?uri={quote(uri)}", seconds)

    return job


def counts(server: peer.Server, seconds: float, n: int) -> Run:
    if server.name == "isso":
        body = "[" + ",".join(f'"{u}"' for u in COUNT_URIS) + "]"
        return wrk(server, "/", seconds, ["body.lua", "/count", body])
    return wrk(server, "/api/counts?" + "&".join(f"uri={quote(u)}" for u in COUNT_URIS), seconds)


def post(uri: str, threads: int = 0) -> Job:
    def job(server: peer.Server, seconds: float, n: int) -> Run:
        kind = "isso" if server.name == "isso" else "kibitz"
        target = uri.replace("{n}", str(n))
        origin = f"http://127.0.0.1:{server.port}"
        script = ["post.lua", kind, target, str(threads), str(n * 1_000_000), origin]
        return wrk(server, "/", seconds, script)

    return job


def page(server: peer.Server, seconds: float, n: int) -> Run:
    return wrk(server, f"/posts/{PAGE_SLUG}", seconds)


# label, job, whether Isso runs it, whether it is warmed up first (reads fill caches)
SCENARIOS: list[tuple[str, Job, bool, bool]] = [
    ("read 10", read("/bench/t10"), True, True),
    ("read 100", read("/bench/t100"), True, True),
    ("counts 10 uris", counts, True, True),
    ("page 100 HTML", page, False, True),
    ("page 100 JSON", read(f"/posts/{PAGE_SLUG}"), False, True),
    ("post 100 threads", post("/bench/p", 100), True, False),
    ("post 5000-thread", post("/bench/t5000"), False, False),
    ("post new thread", post("/bench/new-{n}"), False, False),
]

# (numerator, denominator, goal): ratios of figures from the same run, as issue 16 sets them.
GOALS = [
    ("read 10", "isso", 30.0),
    ("read 100", "isso", 100.0),
    ("counts 10 uris", "isso", 3.0),
    ("post 100 threads", "isso", 3.0),
]
WITHIN = [
    ("post 5000-thread", "post new thread", 0.9),
    ("page 100 HTML", "page 100 JSON", 0.5),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per scenario and server")
    parser.add_argument(
        "--only", default="isso,sqlite", help="comma-separated: isso, sqlite, postgres"
    )
    parser.add_argument("--baseline", help="also run the kibitz of this commit (SQLite)")
    parser.add_argument("--scenarios", help="comma-separated labels to run (default: all)")
    parser.add_argument("--seed", help=argparse.SUPPRESS)  # JSON: source, url, threads
    parser.add_argument("--posts", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        job = json.loads(args.seed)
        sys.path.insert(0, job["source"])  # that commit's db and server packages
        asyncio.run(_seed_kibitz(job["url"], job["threads"]))
        if args.posts:
            asyncio.run(_seed_posts(job["url"]))
        return 0
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    wanted = args.only.split(",")
    scenarios = [s for s in SCENARIOS if not args.scenarios or s[0] in args.scenarios.split(",")]
    peer.PEER.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="kibitz-wrk-", dir=peer.PEER))
    servers: list[peer.Server] = []
    pg_names: list[str] = []
    print(f"machine: {peer.machine()}")
    try:
        if "isso" in wanted:
            (root / "isso").mkdir()
            servers.append(peer.start_isso(root / "isso"))
        if args.baseline:
            rev = subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            work = root / "before"
            source = checkout(rev, work / "source")
            servers.append(
                start_kibitz(
                    f"kibitz@{rev}", f"sqlite:///{work / 'kibitz.db'}", work, source, env={}
                )
            )
        if "sqlite" in wanted:
            work = root / "sqlite"
            work.mkdir()
            servers.append(
                start_kibitz("kibitz-sqlite", f"sqlite:///{work / 'kibitz.db'}", work, ROOT, env={})
            )
        if "postgres" in wanted:
            work = root / "postgres"
            work.mkdir()
            name = f"kibitz_wrk_{uuid.uuid4().hex[:8]}"
            asyncio.run(peer._pg_admin(f'CREATE DATABASE "{name}"'))
            pg_names.append(name)
            servers.append(
                start_kibitz(
                    "kibitz-pg",
                    peer._with_database(peer.POSTGRES, name),
                    work,
                    ROOT,
                    "--workers",
                    "2",
                    env={"KIBITZ_REDIS_URL": peer.REDIS, "KIBITZ_REDIS_PREFIX": f"wrk-{name}"},
                )
            )
        print(f"seeding {sum(THREADS.values()):,} comments into every server …", flush=True)
        for server in servers:
            server.seed(THREADS if server.name == "isso" else {**THREADS, **BIG})
            server.settle()
        time.sleep(2)
        figures: dict[tuple[str, str], Figure] = {}
        runs = 0
        for label, job, with_isso, warm in scenarios:
            taking = [s for s in servers if with_isso or s.name != "isso"]
            for round_ in range(args.rounds):
                for server in taking if round_ % 2 == 0 else taking[::-1]:
                    runs += 1
                    if warm and round_ == 0:
                        job(server, 1, runs)
                        runs += 1
                    run = job(server, args.duration, runs)
                    figures.setdefault((label, server.name), Figure()).runs.append(run)
            for server in taking:
                f = figures[(label, server.name)]
                bad = sum(r.bad for r in f.runs)
                print(
                    f"  {label:<17} {server.name:<16} {f.rate:9.1f} req/s  "
                    f"p50 {f.median('p50'):7.2f} ms  p99 {f.median('p99'):7.2f} ms  "
                    f"CPU {f.median('cpu_ms'):6.2f} ms/req" + (f"  ({bad} failed)" if bad else ""),
                    flush=True,
                )
        report(figures, [s.name for s in servers], args)
    finally:
        for server in servers:
            server.stop()
        for name in pg_names:
            asyncio.run(peer._pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(root, ignore_errors=True)
    return 0


def report(
    figures: dict[tuple[str, str], Figure], names: list[str], args: argparse.Namespace
) -> None:
    print(
        f"\nwrk -t1 -c16 -d{args.duration:g}s, {args.rounds} rounds alternated, medians\n"
        "\n| scenario | server | req/s | p50 ms | p99 ms | CPU ms/req |"
        "\n| --- | --- | ---: | ---: | ---: | ---: |"
    )
    for label, *_ in SCENARIOS:
        for name in names:
            f = figures.get((label, name))
            if f is not None:
                print(
                    f"| {label} | {name} | {f.rate:,.0f} | {f.median('p50'):.2f} | "
                    f"{f.median('p99'):.2f} | {f.median('cpu_ms'):.2f} |"
                )
    kibitz = [n for n in names if n.startswith("kibitz") and "@" not in n]
    print("\nGoals (ratios within this run):")
    for label, other, goal in GOALS:
        for name in kibitz:
            mine, theirs = figures.get((label, name)), figures.get((label, other))
            if mine and theirs and theirs.rate:
                ratio = mine.rate / theirs.rate
                print(
                    f"  {name:<14} {label:<17} {ratio:7.1f}x {other} "
                    f"(goal ≥ {goal:g}x) {'met' if ratio >= goal else 'MISSED'}"
                )
    for label, base, goal in WITHIN:
        for name in kibitz:
            mine, theirs = figures.get((label, name)), figures.get((base, name))
            if mine and theirs and theirs.rate:
                ratio = mine.rate / theirs.rate
                print(
                    f"  {name:<14} {label} ÷ {base}: {ratio:.2f} "
                    f"(goal ≥ {goal:g}) {'met' if ratio >= goal else 'MISSED'}"
                )
    before = [n for n in names if "@" in n]
    if before and "kibitz-sqlite" in names:
        print(f"\nThis commit against {before[0]} (both SQLite, one process):")
        for label, *_ in SCENARIOS:
            old, new = figures.get((label, before[0])), figures.get((label, "kibitz-sqlite"))
            if old and new and old.rate:
                print(
                    f"  {label:<17} {old.rate:9,.0f} → {new.rate:9,.0f} req/s "
                    f"({new.rate / old.rate:.2f}x), CPU {old.median('cpu_ms'):.2f} → "
                    f"{new.median('cpu_ms'):.2f} ms/req"
                )


if __name__ == "__main__":
    sys.exit(main())
