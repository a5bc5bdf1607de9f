"""kibitz beside Isso 0.14, the closest peer (Python, SQLite), on the same data, in one run.

    .venv/bin/python bench/peer.py [--duration 8] [--only isso,sqlite,postgres]

Installs Isso 0.14 and gunicorn into a venv of its own under bench/.peer/ (gitignored) on
first use, and runs it as people do: gunicorn, 2 workers, moderation and rate limits off.
kibitz runs as real ``kibitz serve`` processes: SQLite in one process (the embedded default),
and PostgreSQL + Redis with ``--workers 2`` (like-for-like with gunicorn's 2 workers). Load
comes from bench/load.py over loopback, 16 requests in flight.

Scenarios (issue 2): thread read at 10, 100 and 1,000 comments; the 10-comment thread again
after the database grows from 1k to 20k comments; comment POST; counts for 10 URIs. The
machine is shared, so absolute figures are noisy: the ratios within one run are what count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402

PEER = ROOT / "bench" / ".peer"
ISSO_REQUIREMENT = "isso==0.14.*"
POSTGRES = os.environ.get("KIBITZ_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("KIBITZ_BENCH_REDIS", "redis://127.0.0.1:6379/0")

# The data: phase A is 1,000 comments (the 10-comment thread and filler); phase B grows the
# database to 20,000 (the 100- and 1,000-comment threads and more filler).
PHASE_A = {"/bench/t10": 10, **{f"/bench/f{i}": 10 for i in range(99)}}
PHASE_B = {"/bench/t100": 100, "/bench/t1000": 1000, **{f"/bench/g{i}": 100 for i in range(179)}}
COUNT_URIS = [f"/bench/f{i}" for i in range(10)]
GOALS = {"read 10": 30, "read 100": 100, "read 1000": 100, "post": 3, "counts": 3}


def comment_text(uri: str, i: int) -> str:
    return (
        f"Comment {i} on {uri}: I read this twice and *mostly* agree. The part about "
        f"caching reminded me of https://example.com/notes/{i} which says the same.\n\n"
        "One more thought: measure before you optimise, then measure again."
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited early; see {log}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up; see {log}")


# -- Isso ------------------------------------------------------------------------------------


def isso_venv() -> Path:
    """The venv with Isso and gunicorn, made on first use."""
    venv = PEER / "venv"
    if not (venv / "bin" / "gunicorn").exists() or not list(venv.glob("lib/*/site-packages/isso")):
        PEER.mkdir(parents=True, exist_ok=True)
        print(f"installing {ISSO_REQUIREMENT} and gunicorn into {venv} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", ISSO_REQUIREMENT, "gunicorn"],
            check=True,
        )
    return venv


@dataclass
class Server:
    name: str  # isso, kibitz-sqlite or kibitz-pg: what the figures are reported under
    port: int
    proc: subprocess.Popen[bytes]
    seed: Callable[[dict[str, int]], None]
    settle: Callable[[], None] = lambda: None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_isso(work: Path) -> Server:
    venv, port = isso_venv(), free_port()
    db = work / "isso.db"
    config = work / "isso.cfg"
    config.write_text(f"""[general]
dbpath = {db}
host = http://127.0.0.1:{port}/
notify = stdout
gravatar = false
latest-enabled = false
[moderation]
enabled = false
[guard]
enabled = false
ratelimit = 10000
direct-reply = 10000
reply-to-self = true
[server]
listen = http://127.0.0.1:{port}/
""")
    log = work / "isso.log"
    proc = subprocess.Popen(
        [
            str(venv / "bin" / "gunicorn"),
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "isso.run:application",
        ],
        env={**os.environ, "ISSO_SETTINGS": str(config)},
        cwd=work,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_until_up(f"http://127.0.0.1:{port}/config", proc, log)

    def seed(threads: dict[str, int]) -> None:
        # Straight into Isso's own schema (its tables exist once it has started): the same
        # rows its POST /new would write, without waiting for 20,000 HTTP requests.
        conn = sqlite3.connect(db, timeout=30)
        voters = bytes(256)  # Isso's empty bloom filter
        with conn:
            for uri, n in threads.items():
                conn.execute("INSERT OR IGNORE INTO threads (uri, title) VALUES (?, ?)", (uri, uri))
                tid = conn.execute("SELECT id FROM threads WHERE uri = ?", (uri,)).fetchone()[0]
                conn.executemany(
                    "INSERT INTO comments (tid, parent, created, modified, mode, remote_addr, "
                    "text, author, email, website, likes, dislikes, voters, notification) "
                    "VALUES (?, NULL, ?, NULL, 1, '127.0.0.0', ?, ?, ?, NULL, 0, 0, ?, 0)",
                    [
                        (
                            tid,
                            time.time(),
                            comment_text(uri, i),
                            f"Reader {i}",
                            f"reader{i}@example.org",
                            voters,
                        )
                        for i in range(n)
                    ],
                )
        conn.close()

    # Isso's SQLite uses a rollback journal: nothing is pending after a bulk load.
    return Server("isso", port, proc, seed)


# -- kibitz ----------------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


async def _seed_kibitz(database_url: str, threads: dict[str, int]) -> None:
    from db.comments import CommentStore, NewComment
    from db.database import connect
    from db.migrate import migrate
    from server.discussion.markup import render_comment

    db = await connect(database_url, readers=1)
    try:
        await migrate(db)
        store = CommentStore(db)
        for uri, n in threads.items():
            batch = []
            for i in range(n):
                text = comment_text(uri, i)
                batch.append(
                    NewComment(
                        author=f"Reader {i}",
                        email=f"reader{i}@example.org",
                        website=None,
                        text=text,
                        html=render_comment(text),
                        status="approved",
                        address="127.0.0.1",
                    )
                )
            await store.add_many(uri, batch, title=uri)
    finally:
        await db.close()


def start_kibitz(
    name: str, database_url: str, work: Path, *extra: str, env: dict[str, str] | None = None
) -> Server:
    port = free_port()
    asyncio.run(_seed_kibitz(database_url, {}))  # migrate before any worker starts
    log = work / f"{name}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port), *extra],
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "KIBITZ_DATABASE_URL": database_url,
            "KIBITZ_DATA_DIR": str(work / name),
            "KIBITZ_SECRET_KEY": "bench-" + "x" * 32,
            "KIBITZ_MODERATION": "none",
            "KIBITZ_POST_RATE": "off",
            "KIBITZ_LIVE_PER_ADDRESS": "1000000",  # every bench reader is 127.0.0.1
            "KIBITZ_PUBLIC_URL": f"http://127.0.0.1:{port}",
            **(env or {}),
        },
    )
    wait_until_up(f"http://127.0.0.1:{port}/healthz", proc, log)
    return Server(
        name,
        port,
        proc,
        lambda threads: asyncio.run(_seed_kibitz(database_url, threads)),
        lambda: _settle_kibitz(database_url),
    )


def _settle_kibitz(database_url: str) -> None:
    """After the bulk load, do what a database that grew slowly would have done already.

    19,000 rows inserted in seconds leave PostgreSQL's autovacuum and SQLite's WAL checkpoint
    work to do; measuring during that would measure the bulk load, not the bigger database.
    """
    if database_url.startswith("sqlite:///"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    else:
        asyncio.run(_pg_run(database_url, "VACUUM ANALYZE"))


async def _pg_admin(sql: str) -> None:
    await _pg_run(POSTGRES, sql)


async def _pg_run(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


# -- scenarios -------------------------------------------------------------------------------


def thread_read(server: Server, uri: str) -> Callable[[int], load.Request]:
    path = f"/?uri={quote(uri)}" if server.name == "isso" else f"/api/comments?uri={quote(uri)}"
    return lambda n: ("GET", path, b"", {})


def counts(server: Server) -> Callable[[int], load.Request]:
    if server.name == "isso":
        body = json.dumps(COUNT_URIS).encode()
        return lambda n: ("POST", "/count", body, {"Content-Type": "application/json"})
    path = "/api/counts?" + "&".join(f"uri={quote(u)}" for u in COUNT_URIS)
    return lambda n: ("GET", path, b"", {})


def post(server: Server) -> Callable[[int], load.Request]:
    run = uuid.uuid4().hex[:6]

    def make(n: int) -> load.Request:
        data = {
            "author": f"Poster {n}",
            "email": f"poster{n}@example.org",
            "text": f"New comment {n} of run {run}: short and to the point.",
            "title": "Post",
        }
        if server.name == "isso":
            return (
                "POST",
                "/new?uri=/bench/post",
                json.dumps(data).encode(),
                {"Content-Type": "application/json"},
            )
        data["uri"] = "/bench/post"
        return (
            "POST",
            "/api/comments",
            json.dumps(data).encode(),
            {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{server.port}"},
        )

    return make


def measure(
    server: Server,
    make: Callable[[int], load.Request],
    duration: float,
    expect: tuple[int, ...] = (200,),
    warm: bool = True,
) -> load.Result:
    async def go() -> load.Result:
        if warm:  # fill caches and connection pools; not counted
            await load.run(
                "127.0.0.1",
                server.port,
                make,
                concurrency=4,
                duration=min(2.0, duration),
                max_requests=20,
                expect=expect,
            )
        return await load.run(
            "127.0.0.1", server.port, make, concurrency=16, duration=duration, expect=expect
        )

    return asyncio.run(go())


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=8.0,
        help="seconds of load per scenario and server (default 8)",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="turns each server takes per scenario (default 2)"
    )
    parser.add_argument(
        "--only",
        default="isso,sqlite,postgres",
        help="comma-separated servers to run: isso, sqlite, postgres",
    )
    args = parser.parse_args()
    wanted = args.only.split(",")
    root = Path(tempfile.mkdtemp(prefix="kibitz-peer-", dir=PEER if PEER.exists() else None))
    grown: list[Server] = []  # grows to 20k comments; every scenario runs on these
    small: list[Server] = []  # stays at 1k: the baseline of the growth scenario
    pg_names: list[str] = []
    print(f"machine: {machine()}")

    def start(kind: str, tag: str) -> Server:
        work = root / f"{kind}-{tag}"
        work.mkdir()
        if kind == "isso":
            return start_isso(work)
        if kind == "sqlite":
            return start_kibitz("kibitz-sqlite", f"sqlite:///{work / 'kibitz.db'}", work)
        name = f"kibitz_bench_{uuid.uuid4().hex[:8]}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        pg_names.append(name)
        return start_kibitz(
            "kibitz-pg",
            _with_database(POSTGRES, name),
            work,
            "--workers",
            "2",
            env={"KIBITZ_REDIS_URL": REDIS, "KIBITZ_REDIS_PREFIX": f"bench-{name}"},
        )

    try:
        for kind in ("isso", "sqlite", "postgres"):
            if kind in wanted:
                grown.append(start(kind, "grown"))
                small.append(start(kind, "small"))
        results: dict[str, dict[str, load.Result]] = {s.name: {} for s in grown}

        def interleaved(
            jobs: list[tuple[str, Server, Callable[[int], load.Request]]],
            expect: tuple[int, ...] = (200,),
        ) -> None:
            # Servers take turns in short rounds, so a burst of load from other users of
            # the machine falls on all of them rather than on whichever ran at that moment.
            parts: dict[tuple[str, str], list[load.Result]] = {}
            for round_ in range(args.rounds):
                # Every other round in reverse: whoever runs right after a busy neighbour
                # (its connections still closing, its caches still warm) changes each time.
                for label, server, make in jobs if round_ % 2 == 0 else jobs[::-1]:
                    parts.setdefault((label, server.name), []).append(
                        measure(server, make, args.duration / args.rounds, expect, warm=round_ == 0)
                    )
            for (label, name), runs in parts.items():
                result = results[name][label] = load.merge(runs)
                print(
                    f"  {label:<14} {name:<14} {result.rate:9.1f} req/s  "
                    f"p50 {result.percentile(50):8.1f} ms  p99 {result.percentile(99):8.1f} ms"
                    f"  ({result.ok} ok, {result.errors} errors)",
                    flush=True,
                )

        def scenario(
            label: str,
            make: Callable[[Server], Callable[[int], load.Request]],
            expect: tuple[int, ...] = (200,),
        ) -> None:
            interleaved([(label, server, make(server)) for server in grown], expect)

        print("seeding 1,000 comments into every database …", flush=True)
        for server in grown + small:
            server.seed(PHASE_A)
        print("growing one database of each server to 20,000 comments …", flush=True)
        for server in grown:
            server.seed(PHASE_B)
            server.settle()
        time.sleep(3)
        # The same 10-comment thread on the 1k and the 20k database, measured in turns.
        interleaved(
            [
                job
                for big, little in zip(grown, small, strict=True)
                for job in (
                    ("read 10 @1k", little, thread_read(little, "/bench/t10")),
                    ("read 10 @20k", big, thread_read(big, "/bench/t10")),
                )
            ]
        )
        for server in small:
            server.stop()
        small.clear()
        scenario("read 100", lambda s: thread_read(s, "/bench/t100"))
        scenario("read 1000", lambda s: thread_read(s, "/bench/t1000"))
        scenario("counts", counts)
        scenario("post", post, expect=(201, 202))
        report(results)
    finally:
        for server in grown + small:
            server.stop()
        for name in pg_names:
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(root, ignore_errors=True)
    return 0


def report(results: dict[str, dict[str, load.Result]]) -> None:
    print("\n| scenario | server | req/s | p50 ms | p99 ms | x Isso |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    isso = results.get("isso", {})
    for label in ("read 10 @1k", "read 10 @20k", "read 100", "read 1000", "counts", "post"):
        for name, by_label in results.items():
            r = by_label[label]
            base = isso.get(label)
            ratio = f"{r.rate / base.rate:.1f}x" if base and base.rate and name != "isso" else ""
            print(
                f"| {label} | {name} | {r.rate:.1f} | {r.percentile(50):.1f} | "
                f"{r.percentile(99):.1f} | {ratio} |"
            )
    print("\nGrowth 1k → 20k comments, the same 10-comment thread:")
    for name, by_label in results.items():
        before, after = by_label["read 10 @1k"].rate, by_label["read 10 @20k"].rate
        if before:
            change = (after / before - 1) * 100
            print(f"  {name}: {before:.1f} → {after:.1f} req/s ({change:+.0f} %)")
    if isso:
        print("\nGoals (kibitz ÷ Isso):")
        for name, by_label in results.items():
            if name == "isso":
                continue
            for key, goal in GOALS.items():
                label = "read 10 @1k" if key == "read 10" else key
                base = isso[label].rate
                ratio = by_label[label].rate / base if base else float("inf")
                mark = "met" if ratio >= goal else "MISSED"
                print(f"  {name:<14} {key:<10} {ratio:7.1f}x (goal ≥ {goal}x) {mark}")
            before, after = by_label["read 10 @1k"].rate, by_label["read 10 @20k"].rate
            slower = (1 - after / before) * 100 if before else 0.0
            print(
                f"  {name:<14} {'20k':<10} {slower:6.1f} % slower (goal ≤ 10 %) "
                f"{'met' if slower <= 10 else 'MISSED'}"
            )


if __name__ == "__main__":
    sys.exit(main())
