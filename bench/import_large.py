"""Benchmark: import a generated WordPress export of 100k comments; report time and memory.

    .venv/bin/python bench/import_large.py [--comments 100000] [--per-post 50]
                                           [--database-url URL] [--keep DIR]

Writes a WXR file into a temporary directory (about 1 KB per comment), then runs the real
command, ``kibitz import wordpress FILE``, in a subprocess against a fresh SQLite database (or
``--database-url``), and prints the file size, wall time, comments per second and the peak
resident memory of the import process. While it runs, a probe takes the SQLite write lock
every 50 ms and reports the longest wait: the import commits in batches, so other writers
(a live site) are never kept out for long.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = (
    "kibitz comment thread reply blog post moderation live socket import export "
    "sqlite postgres streaming memory bounded batch parent child author readers"
).split()


def paragraph(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


COMMENT = (
    "<wp:comment><wp:comment_id>{cid}</wp:comment_id>"
    "<wp:comment_author><![CDATA[Reader {who}]]></wp:comment_author>"
    "<wp:comment_author_email>reader{who}@example.org</wp:comment_author_email>"
    "<wp:comment_author_url>https://r{who}.example/</wp:comment_author_url>"
    "<wp:comment_author_IP>192.0.2.{ip}</wp:comment_author_IP>"
    "<wp:comment_date>2016-01-01 10:{minute:02}:00</wp:comment_date>"
    "<wp:comment_date_gmt>2016-01-01 09:{minute:02}:00</wp:comment_date_gmt>"
    "<wp:comment_content><![CDATA[{text}]]></wp:comment_content>"
    "<wp:comment_approved>{status}</wp:comment_approved><wp:comment_type></wp:comment_type>"
    "<wp:comment_parent>{parent}</wp:comment_parent></wp:comment>\n"
)


def generate(path: Path, comments: int, per_post: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    posts = max(1, comments // per_post)
    with path.open("w", encoding="utf-8") as out:
        out.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:wp="http://wordpress.org/export/1.2/">\n<channel>\n'
        )
        written = 0
        for p in range(1, posts + 1):
            count = per_post if p < posts else comments - written
            out.write(
                f"<item><title>Post {p}</title>"
                f"<link>https://blog.example/{2000 + p % 20}/{p % 12 + 1:02}/post-{p}/</link>"
                f"<dc:creator>author</dc:creator><content:encoded><![CDATA["
                + "\n\n".join(paragraph(rng, 60) for _ in range(5))
                + f"]]></content:encoded><wp:post_id>{p}</wp:post_id>"
                f"<wp:post_date_gmt>2015-03-01 10:00:00</wp:post_date_gmt>"
                f"<wp:post_name>post-{p}</wp:post_name><wp:status>publish</wp:status>"
                f"<wp:post_type>post</wp:post_type>\n"
            )
            # About a third are replies (to an earlier comment: no cycles); every tenth pair
            # is listed child first, as exports sorted by something else do.
            order = list(range(1, count + 1))
            for i in range(0, count - 1, 10):
                order[i], order[i + 1] = order[i + 1], order[i]
            for c in order:
                cid = p * 1000 + c
                parent = p * 1000 + rng.randint(1, c - 1) if c > 1 and rng.random() < 0.33 else 0
                status = rng.choices(["1", "0", "spam", "trash"], [90, 4, 4, 2])[0]
                text = "\n\n".join(paragraph(rng, 40) for _ in range(3))
                out.write(
                    COMMENT.format(
                        cid=cid,
                        who=cid % 5000,
                        ip=cid % 250,
                        minute=c % 60,
                        text=text,
                        status=status,
                        parent=parent,
                    )
                )
            written += count
            out.write("</item>\n")
        out.write("</channel>\n</rss>\n")


class WriterProbe(threading.Thread):
    """Takes the SQLite write lock every 50 ms; remembers the longest wait for it."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.longest, self.stop = path, 0.0, threading.Event()

    def run(self) -> None:
        while not self.path.exists() and not self.stop.is_set():
            time.sleep(0.05)
        conn = sqlite3.connect(self.path, timeout=600, isolation_level=None)
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            except sqlite3.OperationalError:
                pass
            self.longest = max(self.longest, time.monotonic() - started)
            time.sleep(0.05)
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comments", type=int, default=100_000)
    parser.add_argument("--per-post", type=int, default=50)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--keep", help="generate into this directory and keep the files")
    parser.add_argument(
        "--twice",
        action="store_true",
        help="import the file a second time and time that no-op run too",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        wxr = work / "large.xml"
        started = time.monotonic()
        generate(wxr, args.comments, args.per_post)
        print(
            f"generated {wxr} ({wxr.stat().st_size / 1e6:.0f} MB, {args.comments} comments) "
            f"in {time.monotonic() - started:.1f} s"
        )
        db_path = work / "bench.db"
        url = args.database_url or f"sqlite:///{db_path}"
        probe = WriterProbe(db_path) if not args.database_url else None
        if probe:
            probe.start()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "KIBITZ_DATABASE_URL": url,
            "KIBITZ_DATA_DIR": str(work / "data"),
        }
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "server", "import", "wordpress", str(wxr)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        elapsed = time.monotonic() - started
        if probe:
            probe.stop.set()
            probe.join()
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(result.stdout, end="")
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return result.returncode
        print(
            f"import: {elapsed:.1f} s, {args.comments / elapsed:.0f} comments/s, "
            f"peak RSS {peak:.0f} MB"
        )
        if probe:
            print(f"longest wait of another writer for the SQLite lock: {probe.longest:.2f} s")
        if args.twice:
            started = time.monotonic()
            again = subprocess.run(
                [sys.executable, "-m", "server", "import", "wordpress", str(wxr)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            new = [line for line in again.stdout.splitlines() if "comments:" in line]
            print(
                f"second import of the same file: {time.monotonic() - started:.1f} s; "
                f"{new[0].strip() if new else again.stderr.strip()}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
