"""The reader's paths under wrk: kibitz beside Isso 0.14 and Remark42, in one run.

    .venv/bin/python bench/wrk.py [--duration 5] [--rounds 3] [--only isso,sqlite,postgres,…]
                                  [--remark42 PATH] [--moderation first-time] [--baseline REV]

Load comes from ``wrk -t1 -c16`` (the Debian package), a C load generator that costs far less
CPU than the servers, so on a 2-core machine the servers are what is measured. Every request
carries a client address in X-Forwarded-For (believed from loopback only): POSTs each their
own, reads and counts one of 4,096 in turn (bench/wrk/*.lua), so every server's per-address
rate limits are in the path but never the limit.

Servers (``--only``, comma-separated):
- ``isso``: Isso 0.14 under gunicorn with 2 workers (bench/servers.py installs it).
- ``sqlite``: kibitz on SQLite, one process, pinned to one core (``taskset -c 1``).
- ``postgres``: kibitz on PostgreSQL + Redis, ``--workers 2``, on both cores.
- ``postgres1``: the same with one worker (two workers against one).
- ``--remark42 PATH``: Remark42 from a binary built elsewhere (bench/remark42.py), once on
  both cores and once pinned to one core (``remark42-1core``, the same core as kibitz).
- ``--baseline REV``: the kibitz of an older commit on SQLite, seeded with the same data.
kibitz runs with its defaults but ``KIBITZ_MODERATION`` (``--moderation``, default ``none``:
Isso's and Remark42's are off too) and ``KIBITZ_TRUSTED_PROXIES=127.0.0.1``.

Each scenario runs every server in turn, ``--rounds`` times (every other round in reverse
order), ``--duration`` seconds each; the figure is the median over rounds, and every ratio
compares figures of the same run. CPU per request is the servers' own CPU time (all their
processes) over the requests they answered: less noisy than req/s on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.remark42 import SITE, start_remark42  # noqa: E402
from bench.servers import (  # noqa: E402
    PEER,
    POSTGRES,
    REDIS,
    Post,
    Server,
    Threads,
    checkout,
    machine,
    pg_admin,
    start_isso,
    start_kibitz,
    with_database,
)

SCRIPTS = ROOT / "bench" / "wrk"
TICKS = os.sysconf("SC_CLK_TCK")
ONE_CORE = "1"  # where one-core servers run; wrk and the rest of the machine use both

# The data, the same in every server: threads read, counted and posted to.
THREADS: Threads = {
    "/bench/t10": 10,
    "/bench/t100": 100,
    "/bench/t1000": 1000,
    "/bench/u1000": 1000,
    **{f"/bench/f{i}": 10 for i in range(10)},
    **{f"/bench/p-{i}": 10 for i in range(100)},  # POST spreads over these
}
BIG: Threads = {"/bench/t5000": 5000}  # kibitz only: POST to a big thread
# kibitz's post pages: 100 comments, and 5,000 (3,000 top-level, 2,000 replies under them)
PAGES = [Post("bench100", 100), Post("bench5000", 3000, 2000)]
# Added before the last scenario: the database grows by 20,000 comments in 200 threads.
GROWTH: Threads = {f"/bench/g{i}": 100 for i in range(200)}
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
    load_cpu: float = 0.0  # wrk's own CPU seconds: what the servers did not get of the cores
    busy: float = float("nan")  # the machine's share of CPU time not idle (1.0 = every core)

    @property
    def rate(self) -> float:
        return max(0, self.requests - self.bad) / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        good = self.requests - self.bad
        return self.cpu * 1000 / good if good > 0 else float("nan")

    @property
    def load_cpu_ms(self) -> float:
        good = self.requests - self.bad
        return self.load_cpu * 1000 / good if good > 0 else float("nan")

    @property
    def load_cores(self) -> float:
        """The share of the machine wrk itself took (1.0 = one core, all the time)."""
        return self.load_cpu / self.seconds if self.seconds else float("nan")


@dataclass
class Figure:
    runs: list[Run] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return float(statistics.median(getattr(r, attr) for r in self.runs))

    @property
    def rate(self) -> float:
        return self.median("rate")


def machine_ticks() -> tuple[int, int]:
    """All CPU time of the machine so far, and the idle part of it (ticks of /proc/stat)."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(ticks[:8]), ticks[3] + ticks[4]  # user … steal; idle + iowait


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


# -- wrk ----------------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(found.group(1)) * _UNITS[found.group(2)] if found else float("nan")


def wrk(server: Server, path: str, seconds: float, script: list[str] | None = None) -> Run:
    """One ``wrk -t1 -c16`` run; ``script`` is a Lua file under bench/wrk/ and its arguments."""
    command = ["wrk", "-t1", "-c16", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    if script:
        command += ["-s", str(SCRIPTS / script[0])]
    command.append(f"http://127.0.0.1:{server.port}{path}")
    if script:
        command += ["--", *script[1:]]
    before = cpu_seconds(server.proc.pid)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only one waited for
    ticks, idle = machine_ticks()
    started = time.monotonic()
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    elapsed = time.monotonic() - started
    ticks_after, idle_after = machine_ticks()
    busy = 1 - (idle_after - idle) / (ticks_after - ticks) if ticks_after > ticks else float("nan")
    cpu = cpu_seconds(server.proc.pid) - before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
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
        load_cpu,
        busy,
    )


# -- scenarios ----------------------------------------------------------------------------------

Job = Callable[[Server, float, int], Run]  # server, seconds, run number → Run


def kind(server: Server) -> str:
    """isso, remark42 or kibitz: which API a server speaks."""
    return server.name.split("-")[0].split("@")[0]


BROWSER_ENCODINGS = "gzip, deflate, br, zstd"  # Chromium's Accept-Encoding


def _request(
    server: Server, seconds: float, method: str, path: str, body: str = "", encodings: str = ""
) -> Run:
    return wrk(server, "/", seconds, ["request.lua", method, path, body, "4096", encodings])


def read(uri: str, limit: int | None = None, encodings: str = "") -> Job:
    def job(server: Server, seconds: float, n: int) -> Run:
        if kind(server) == "isso":
            return _request(server, seconds, "GET", f"/?uri={quote(uri)}", "", encodings)
        if kind(server) == "remark42":
            found = f"/api/v1/find?site={SITE}&url={quote(uri)}&format=tree"
            return _request(server, seconds, "GET", found, "", encodings)
        page = f"&limit={limit}" if limit else ""
        path = f"/api/comments?uri={quote(uri)}{page}"
        return _request(server, seconds, "GET", path, "", encodings)

    return job


def counts(server: Server, seconds: float, n: int) -> Run:
    body = "[" + ",".join(f'"{u}"' for u in COUNT_URIS) + "]"
    if kind(server) == "isso":
        return _request(server, seconds, "POST", "/count", body)
    if kind(server) == "remark42":
        return _request(server, seconds, "POST", f"/api/v1/counts?site={SITE}", body)
    query = "&".join(f"uri={quote(u)}" for u in COUNT_URIS)
    return _request(server, seconds, "GET", f"/api/counts?{query}")


def post(uri: str, threads: int = 0) -> Job:
    def job(server: Server, seconds: float, n: int) -> Run:
        target = uri.replace("{n}", str(n))
        origin = f"http://127.0.0.1:{server.port}"
        script = ["post.lua", kind(server), target, str(threads), str(n * 1_000_000), origin]
        if kind(server) == "remark42":
            script.append(server.extra["token"]())
        return wrk(server, "/", seconds, script)

    return job


def page(slug: str, encodings: str = "") -> Job:
    def job(server: Server, seconds: float, n: int) -> Run:
        return _request(server, seconds, "GET", f"/posts/{slug}", "", encodings)

    return job


@dataclass(frozen=True)
class Scenario:
    label: str
    job: Job
    peers: frozenset[str]  # which other servers run it besides kibitz
    warm: bool  # warmed up first (reads fill caches)


BOTH = frozenset({"isso", "remark42"})
SCENARIOS = [
    Scenario("read 10", read("/bench/t10"), BOTH, True),
    Scenario("read 100", read("/bench/t100"), BOTH, True),
    Scenario("read 1000", read("/bench/t1000"), frozenset({"remark42"}), True),
    Scenario("counts 10 uris", counts, BOTH, True),
    Scenario("page 100 HTML", page(PAGES[0].slug), frozenset(), True),
    Scenario("page 100 JSON", read(f"/posts/{PAGES[0].slug}"), frozenset(), True),
    Scenario("page 5000 HTML", page(PAGES[1].slug), frozenset(), True),
    Scenario("page 5000 JSON", read(f"/posts/{PAGES[1].slug}", limit=50), frozenset(), True),
    # The same as a browser asks for them, accepting gzip (wrk does not decode bodies).
    Scenario("read 100, gzip", read("/bench/t100", encodings=BROWSER_ENCODINGS), BOTH, True),
    Scenario("page 100 HTML, gzip", page(PAGES[0].slug, BROWSER_ENCODINGS), frozenset(), True),
    Scenario(
        "page 100 JSON, gzip",
        read(f"/posts/{PAGES[0].slug}", encodings=BROWSER_ENCODINGS),
        frozenset(),
        True,
    ),
    Scenario("page 5000 HTML, gzip", page(PAGES[1].slug, BROWSER_ENCODINGS), frozenset(), True),
    Scenario(
        "page 5000 JSON, gzip",
        read(f"/posts/{PAGES[1].slug}", limit=50, encodings=BROWSER_ENCODINGS),
        frozenset(),
        True,
    ),
    Scenario("post 100 threads", post("/bench/p", 100), BOTH, False),
    Scenario("post 5000-thread", post("/bench/t5000"), frozenset(), False),
    Scenario("post new thread", post("/bench/new-{n}"), frozenset(), False),
]
# Measured after the database has grown by GROWTH.
GROWN = [Scenario("counts 10 uris, +20k", counts, BOTH, True)]


@dataclass(frozen=True)
class Goal:
    """``label`` on ``server`` ≥ ``goal`` times ``base_label`` on ``base_server`` (same run)."""

    label: str
    server: str
    base_label: str
    base_server: str
    goal: float
    machine_bound: bool = False  # two workers against one: also read at a full machine


def _goals() -> list[Goal]:
    goals: list[Goal] = []
    for label in ("read 10", "read 100", "read 1000", "counts 10 uris", "post 100 threads"):
        # equal cores: one process on one core, and two workers on two cores
        goals.append(Goal(label, "kibitz-sqlite", label, "remark42-1core", 1.0))
        goals.append(Goal(label, "kibitz-pg", label, "remark42", 1.0))
    for label, goal in (("read 10", 30), ("read 100", 100), ("counts 10 uris", 3)):
        goals += [Goal(label, k, label, "isso", goal) for k in ("kibitz-sqlite", "kibitz-pg")]
    goals.append(Goal("post 100 threads", "kibitz-pg", "post 100 threads", "isso", 3.0))
    for k in ("kibitz-sqlite", "kibitz-pg", "kibitz-pg-1w"):
        goals += [
            Goal("post 5000-thread", k, "post new thread", k, 0.9),
            Goal("page 100 HTML", k, "page 100 JSON", k, 0.5),
            Goal("page 5000 HTML", k, "page 5000 JSON", k, 0.5),
            Goal("page 100 HTML, gzip", k, "page 100 JSON, gzip", k, 0.5),
            Goal("page 5000 HTML, gzip", k, "page 5000 JSON, gzip", k, 0.5),
            Goal("counts 10 uris, +20k", k, "counts 10 uris", k, 0.9),
        ]
    for label in ("read 10", "read 100", "page 100 HTML", "page 5000 HTML"):
        goals.append(Goal(label, "kibitz-pg", label, "kibitz-pg-1w", 1.5, machine_bound=True))
        if label != "read 10":  # as browsers ask: gzip
            zipped = f"{label}, gzip"
            goals.append(Goal(zipped, "kibitz-pg", zipped, "kibitz-pg-1w", 1.5, machine_bound=True))
    return goals


GOALS = _goals()


# -- the run ------------------------------------------------------------------------------------


def start_servers(args: argparse.Namespace, root: Path, pg_names: list[str]) -> list[Server]:
    wanted = args.only.split(",")
    moderation = {"KIBITZ_MODERATION": args.moderation}
    servers: list[Server] = []
    if "isso" in wanted:
        (root / "isso").mkdir()
        servers.append(start_isso(root / "isso"))
    if args.remark42:
        binary = Path(args.remark42).resolve()
        servers.append(start_remark42(binary, root / "remark42", "remark42", None))
        servers.append(start_remark42(binary, root / "remark42-1", "remark42-1core", ONE_CORE))
    if args.baseline:
        rev = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        work = root / "before"
        source = checkout(rev, work / "source")
        url = f"sqlite:///{work / 'kibitz.db'}"
        servers.append(
            start_kibitz(f"kibitz@{rev}", url, work, source, env=moderation, cores=ONE_CORE)
        )
    if "sqlite" in wanted:
        work = root / "sqlite"
        work.mkdir()
        url = f"sqlite:///{work / 'kibitz.db'}"
        servers.append(
            start_kibitz("kibitz-sqlite", url, work, ROOT, env=moderation, cores=ONE_CORE)
        )
    for tag, workers in (("postgres", "2"), ("postgres1", "1")):
        if tag not in wanted:
            continue
        work = root / tag
        work.mkdir()
        name = f"kibitz_wrk_{uuid.uuid4().hex[:8]}"
        pg_admin(f'CREATE DATABASE "{name}"')
        pg_names.append(name)
        servers.append(
            start_kibitz(
                "kibitz-pg" if workers == "2" else "kibitz-pg-1w",
                with_database(POSTGRES, name),
                work,
                ROOT,
                "--workers",
                workers,
                env={**moderation, "KIBITZ_REDIS_URL": REDIS, "KIBITZ_REDIS_PREFIX": f"wrk-{name}"},
            )
        )
    return servers


def seed(servers: list[Server], threads: Threads, first: bool) -> None:
    """Every server gets ``threads``; the first time, kibitz also gets BIG and PAGES."""
    for server in servers:
        server.seed({**threads, **BIG} if first and server.pages else threads)
        if first and server.pages:
            server.pages(PAGES)
        server.settle()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per scenario and server")
    parser.add_argument(
        "--only",
        default="isso,sqlite",
        help="comma-separated: isso, sqlite, postgres, postgres1",
    )
    parser.add_argument("--remark42", help="a Remark42 binary, to run beside kibitz")
    parser.add_argument("--moderation", default="none", help="kibitz's KIBITZ_MODERATION")
    parser.add_argument("--baseline", help="also run the kibitz of this commit (SQLite)")
    parser.add_argument(
        "--scenarios",
        help='labels to run, separated by commas without a space: "read 100,read 100, gzip" '
        "(default: all)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    # Labels may hold ", " ("read 100, gzip"); a comma with no space after it separates them.
    chosen = re.split(r",(?! )", args.scenarios) if args.scenarios else None
    scenarios = [s for s in SCENARIOS if not chosen or s.label in chosen]
    grown = [s for s in GROWN if not chosen or s.label in chosen]
    PEER.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="kibitz-wrk-", dir=PEER))
    servers: list[Server] = []
    pg_names: list[str] = []
    print(f"machine: {machine()}", flush=True)
    try:
        servers = start_servers(args, root, pg_names)
        print(f"seeding {sum(THREADS.values()):,} comments into every server …", flush=True)
        seed(servers, THREADS, first=True)
        time.sleep(2)
        figures: dict[tuple[str, str], Figure] = {}
        counter = [0]
        for scenario in scenarios:
            measure(scenario, servers, args, figures, counter)
        if grown:
            print(f"growing every database by {sum(GROWTH.values()):,} comments …", flush=True)
            seed(servers, GROWTH, first=False)
            time.sleep(2)
            for scenario in grown:
                measure(scenario, servers, args, figures, counter)
        report(figures, [s.name for s in servers], args)
    finally:
        for server in servers:
            server.stop()
        for name in pg_names:
            pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(root, ignore_errors=True)
    return 0


def measure(
    scenario: Scenario,
    servers: list[Server],
    args: argparse.Namespace,
    figures: dict[tuple[str, str], Figure],
    counter: list[int],
) -> None:
    taking = [s for s in servers if kind(s) == "kibitz" or kind(s) in scenario.peers]
    for round_ in range(args.rounds):
        for server in taking if round_ % 2 == 0 else taking[::-1]:
            counter[0] += 1
            if scenario.warm and round_ == 0:
                scenario.job(server, 1, counter[0])
                counter[0] += 1
            run = scenario.job(server, args.duration, counter[0])
            figures.setdefault((scenario.label, server.name), Figure()).runs.append(run)
    for server in taking:
        f = figures[(scenario.label, server.name)]
        bad = sum(r.bad for r in f.runs)
        print(
            f"  {scenario.label:<20} {server.name:<16} {f.rate:9.1f} req/s  "
            f"p50 {f.median('p50'):7.2f} ms  p99 {f.median('p99'):7.2f} ms  "
            f"CPU {f.median('cpu_ms'):6.2f} ms/req" + (f"  ({bad} failed)" if bad else ""),
            flush=True,
        )


def full_machine(mine: Figure, theirs: Figure) -> float:
    """``mine`` against ``theirs`` as it would be had ``mine``'s runs kept every core busy:
    its rate over the share of the machine that was busy. Two workers against one is bounded
    by this: a request costs the workers, wrk and the kernel what it cost in those runs, and
    what is missing below it is idle time; what is missing above it is cores."""
    busy = mine.median("busy")
    return mine.rate / busy / theirs.rate if busy and theirs.rate else float("nan")


def report(
    figures: dict[tuple[str, str], Figure], names: list[str], args: argparse.Namespace
) -> None:
    print(
        f"\nwrk -t1 -c16 -d{args.duration:g}s, {args.rounds} rounds alternated, medians; "
        f"kibitz moderation {args.moderation}\n"
        "\n| scenario | server | req/s | p50 ms | p99 ms | CPU ms/req | wrk cores | machine busy |"
        "\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for scenario in SCENARIOS + GROWN:
        for name in names:
            f = figures.get((scenario.label, name))
            if f is not None:
                print(
                    f"| {scenario.label} | {name} | {f.rate:,.0f} | {f.median('p50'):.2f} | "
                    f"{f.median('p99'):.2f} | {f.median('cpu_ms'):.2f} | "
                    f"{f.median('load_cores'):.2f} | {f.median('busy'):.0%} |"
                )
    print(
        "\nGoals (ratios of req/s within this run; beside them the servers' CPU per request,"
        " the cores wrk itself took, and how busy the whole machine was: at 100 % no core had"
        " time left)"
    )
    for g in GOALS:
        mine, theirs = figures.get((g.label, g.server)), figures.get((g.base_label, g.base_server))
        if not (mine and theirs and theirs.rate):
            continue
        ratio = mine.rate / theirs.rate
        base = g.base_server if g.base_label == g.label else g.base_label
        if g.base_server != g.server and g.base_label != g.label:
            base = f"{g.base_label} on {g.base_server}"
        print(
            f"  {g.server:<14} {g.label:<20} {ratio:7.2f}x {base:<22} (goal ≥ {g.goal:g}) "
            f"{'met' if ratio >= g.goal else 'MISSED'}   CPU "
            f"{mine.median('cpu_ms'):.3f} vs {theirs.median('cpu_ms'):.3f} ms/req, wrk "
            f"{mine.median('load_cores'):.2f} vs {theirs.median('load_cores'):.2f} cores, "
            f"machine {mine.median('busy'):.0%} vs {theirs.median('busy'):.0%} busy"
            + (f"; {full_machine(mine, theirs):.2f}x at a full machine" if g.machine_bound else "")
        )
    before = [n for n in names if "@" in n]
    if before and "kibitz-sqlite" in names:
        print(f"\nThis commit against {before[0]} (both SQLite, one process):")
        for scenario in SCENARIOS + GROWN:
            old = figures.get((scenario.label, before[0]))
            new = figures.get((scenario.label, "kibitz-sqlite"))
            if old and new and old.rate:
                print(
                    f"  {scenario.label:<20} {old.rate:9,.0f} → {new.rate:9,.0f} req/s "
                    f"({new.rate / old.rate:.2f}x), CPU {old.median('cpu_ms'):.2f} → "
                    f"{new.median('cpu_ms'):.2f} ms/req"
                )


if __name__ == "__main__":
    sys.exit(main())
