"""The servers the benchmarks compare, started as people run them, and seeded with one data set.

Isso 0.14 under gunicorn (installed into bench/.peer/ on first use), kibitz as real ``kibitz
serve`` processes (SQLite, or PostgreSQL + Redis), and Remark42 from a binary built outside
this repository (bench/remark42.py). bench/wrk.py drives them with wrk.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "bench" / ".peer"  # gitignored: Isso's venv, the runs' data
ISSO_REQUIREMENT = "isso==0.14.*"
POSTGRES = os.environ.get("KIBITZ_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("KIBITZ_BENCH_REDIS", "redis://127.0.0.1:6379/0")

Threads = dict[str, int]  # thread uri → number of (top-level) comments


@dataclass
class Server:
    """One running server: the figures are reported under ``name``."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    seed: Callable[[Threads], None]
    settle: Callable[[], None] = lambda: None
    pages: Callable[[list[Post]], None] | None = None  # kibitz: post pages with their threads
    # Whatever a kind of server needs per run (Remark42: a fresh login token).
    extra: dict[str, Callable[[], str]] = field(default_factory=dict)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


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


def pinned(command: list[str], cores: str | None) -> list[str]:
    """``command`` under ``taskset -c cores`` (``None``: any core)."""
    return ["taskset", "-c", cores, *command] if cores else command


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


# -- Isso ---------------------------------------------------------------------------------------


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


def start_isso(work: Path) -> Server:
    """Isso as people run it: gunicorn, 2 workers; moderation and rate limits off."""
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
    # Isso makes its schema when its app is built, and two workers building it at once on a
    # new file can both insert its preferences and one dies (UNIQUE constraint): build it once.
    subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import isso.run"],
        env={**os.environ, "ISSO_SETTINGS": str(config)},
        cwd=work,
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [
            str(venv / "bin" / "gunicorn"),
            *("--workers", "2", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"),
            "isso.run:application",
        ],
        env={**os.environ, "ISSO_SETTINGS": str(config)},
        cwd=work,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_until_up(f"http://127.0.0.1:{port}/config", proc, log)

    def seed(threads: Threads) -> None:
        # Straight into Isso's own schema (its tables exist once it has started): the same
        # rows its POST /new would write, without waiting for thousands of HTTP requests.
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


# -- kibitz -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    """A post page to seed: ``tops`` top-level comments, and ``replies`` more spread under them."""

    slug: str
    tops: int
    replies: int = 0


async def seed_kibitz(database_url: str, threads: Threads, posts: list[Post]) -> None:
    """Threads of top-level comments, and posts with their threads, through kibitz's stores.

    Each thread's comments are spread over the past weeks, ten minutes apart, as a thread that
    grew to that size would be (what a POST checks against its thread, such as the duplicate
    window, looks only at recent comments).
    """
    import random

    from db.comments import CommentStore, NewComment
    from db.database import connect
    from db.migrate import migrate
    from db.models import now
    from db.posts import PostStore
    from server.discussion.markup import render_comment

    def new(uri: str, i: int, n: int, parent: int | None = None) -> NewComment:
        text = comment_text(uri, i)
        return NewComment(
            author=f"Reader {i}",
            email=f"reader{i}@example.org",
            website=None,
            text=text,
            html=render_comment(text),
            status="approved",
            address="127.0.0.1",
            created=start - timedelta(minutes=10 * (n - i)),
            parent_id=parent,
        )

    db = await connect(database_url, readers=1)
    start = now()
    try:
        await migrate(db)
        store = CommentStore(db)
        for uri, n in threads.items():
            for chunk in range(0, n, 1000):
                batch = [new(uri, i, n) for i in range(chunk, min(n, chunk + 1000))]
                await store.add_many(uri, batch, title=uri)
        for post in posts:
            await PostStore(db).add(
                slug=post.slug, title="A post", author="Admin", body_html="<p>The post.</p>"
            )
            uri, n = f"/posts/{post.slug}", post.tops + post.replies
            roots: list[int] = []
            for chunk in range(0, post.tops, 1000):
                batch = [new(uri, i, n) for i in range(chunk, min(post.tops, chunk + 1000))]
                roots += await store.add_many(uri, batch, title="A post")
            rng = random.Random(7)
            parents = {i: rng.choice(roots) for i in range(post.tops, n)}
            for chunk in range(post.tops, n, 200):  # concurrent: they share group commits
                await asyncio.gather(
                    *(
                        store.add(uri, new(uri, i, n, parents[i]), create_thread=False)
                        for i in range(chunk, min(n, chunk + 200))
                    )
                )
    finally:
        await db.close()


def seed_with(source: Path, database_url: str, threads: Threads, posts: list[Post]) -> None:
    """Seed with the stores (and migrations) of the kibitz at ``source``, in a process of its
    own: an older commit's database must not get this commit's migrations."""
    posts_ = [[p.slug, p.tops, p.replies] for p in posts]
    job = {"source": str(source), "url": database_url, "threads": threads, "posts": posts_}
    subprocess.run([sys.executable, "-m", "bench.servers", json.dumps(job)], check=True, cwd=ROOT)


def settle_kibitz(database_url: str) -> None:
    """After the bulk load, do what a database that grew slowly would have done already.

    Thousands of rows inserted in seconds leave PostgreSQL's autovacuum and SQLite's WAL
    checkpoint work to do; measuring during that would measure the bulk load.
    """
    if database_url.startswith("sqlite:///"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
    else:
        asyncio.run(pg_run(database_url, "VACUUM ANALYZE"))


def start_kibitz(
    name: str,
    database_url: str,
    work: Path,
    source: Path,
    *extra: str,
    env: dict[str, str],
    cores: str | None = None,
) -> Server:
    """``kibitz serve`` with its defaults but moderation off (Isso's is off too) and
    ``KIBITZ_TRUSTED_PROXIES=127.0.0.1``: the load gives each POST its own client address in
    X-Forwarded-For, so the per-address rate limit is in the path but never the limit."""
    port = free_port()
    seed_with(source, database_url, {}, [])  # migrate before any worker starts
    log = work / f"{name}.log"
    proc = subprocess.Popen(
        pinned([sys.executable, "-m", "server", "serve", "--port", str(port), *extra], cores),
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
    wait_until_up(f"http://127.0.0.1:{port}/healthz", proc, log)
    return Server(
        name,
        port,
        proc,
        lambda threads: seed_with(source, database_url, threads, []),
        lambda: settle_kibitz(database_url),
        lambda posts: seed_with(source, database_url, {}, posts),
    )


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


# -- PostgreSQL ---------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


async def pg_run(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_admin(sql: str) -> None:
    asyncio.run(pg_run(POSTGRES, sql))


if __name__ == "__main__":  # seed_with's process: python -m bench.servers JOB
    job = json.loads(sys.argv[1])
    sys.path.insert(0, job["source"])  # that commit's db and server packages
    asyncio.run(seed_kibitz(job["url"], job["threads"], [Post(*p) for p in job.get("posts", [])]))
