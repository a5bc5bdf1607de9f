"""Imports refuse unsafe or broken input whole, and a failure half-way leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from db.errors import DatabaseError
from server.portability.export import FORMAT, VERSION
from server.portability.importers.report import ImportRefused
from tests.helpers.imports import (
    corpus,
    import_into,
    open_db,
    rows,
    table_counts,
    wxr,
    wxr_comment,
    wxr_item,
)
from tests.helpers.posts import add_post
from tests.helpers.servers import ROOT

LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"""


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


def _env(url: str, tmp_path: Path) -> dict[str, str]:
    return {"KIBITZ_DATABASE_URL": url, "KIBITZ_DATA_DIR": str(tmp_path / "data")}


async def test_billion_laughs_is_refused_without_expanding(
    database_url: str, tmp_path: Path
) -> None:
    """An export declaring entities exits 2 naming the entity, and imports nothing."""
    bomb = tmp_path / "laughs.xml"
    body = wxr(wxr_item(1, "bomb", wxr_comment(1, "&lol9;")))
    bomb.write_text(LAUGHS + body.split("\n", 1)[1])
    result = await asyncio.to_thread(
        _cli, _env(database_url, tmp_path), "import", "wordpress", str(bomb)
    )
    assert result.returncode == 2
    assert "entity 'lol'" in result.stderr and "nothing was imported" in result.stderr
    assert (await table_counts(database_url))["comments"] == 0
    assert (await table_counts(database_url))["posts"] == 0


async def test_external_entity_is_never_resolved(database_url: str, tmp_path: Path) -> None:
    """A SYSTEM entity pointing at a local file is refused; the file's content goes nowhere."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    evil = tmp_path / "xxe.xml"
    body = wxr(wxr_item(1, "xxe", wxr_comment(1, "&xxe;")))
    evil.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY xxe SYSTEM '
        f'"file://{secret}">]>\n' + body.split("\n", 1)[1]
    )
    with pytest.raises(ImportRefused, match="entity 'xxe'"):
        await import_into(database_url, "wordpress", evil)
    assert (await table_counts(database_url))["comments"] == 0


async def test_external_dtd_is_never_fetched(database_url: str, tmp_path: Path) -> None:
    """A DOCTYPE naming a remote DTD imports without kibitz ever connecting to it."""
    connections: list[int] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.close()

    listener = await asyncio.start_server(record, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    path = tmp_path / "dtd.xml"
    body = wxr(wxr_item(1, "dtd", wxr_comment(1, "plain")))
    path.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE rss SYSTEM '
        f'"http://127.0.0.1:{port}/evil.dtd">\n' + body.split("\n", 1)[1]
    )
    try:
        report = await import_into(database_url, "wordpress", path)
    finally:
        listener.close()
        await listener.wait_closed()
    assert report.imported == 1
    assert connections == []


async def test_malformed_xml_exits_2_with_the_line(database_url: str, tmp_path: Path) -> None:
    """A broken Disqus file (stray backtick) exits 2 with line and column; nothing is written."""
    result = await asyncio.to_thread(
        _cli,
        _env(database_url, tmp_path),
        "import",
        "disqus",
        str(corpus("disqus/remark42-disqus.xml")),
    )
    assert result.returncode == 2
    assert "line 1, column 0" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (await table_counts(database_url))["threads"] == 0


async def test_a_late_syntax_error_imports_nothing(database_url: str, tmp_path: Path) -> None:
    """A file broken at its very end is refused before its first, valid items are written."""
    path = tmp_path / "truncated.xml"
    good = wxr("".join(wxr_item(i, f"p{i}", wxr_comment(i, f"c{i}")) for i in range(1, 50)))
    path.write_text(good[:-20])
    with pytest.raises(ImportRefused, match="line"):
        await import_into(database_url, "wordpress", path, batch_size=2)
    await _empty(database_url)


@pytest.mark.parametrize("fmt", ["isso"])
async def test_a_database_that_is_not_issos_is_refused(
    database_url: str, tmp_path: Path, fmt: str
) -> None:
    """Another SQLite file, or no SQLite at all, exits 2 with the reason and imports nothing."""
    other = tmp_path / "other.db"
    import sqlite3

    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE comments (id INTEGER PRIMARY KEY, body TEXT)")
    env = _env(database_url, tmp_path)
    wrong_tables = await asyncio.to_thread(_cli, env, "import", fmt, str(other))
    not_sqlite = await asyncio.to_thread(
        _cli, env, "import", fmt, str(corpus("wordpress/wpimporter-slashes.xml"))
    )
    missing = await asyncio.to_thread(_cli, env, "import", fmt, str(tmp_path / "nope.db"))
    assert wrong_tables.returncode == 2 and "not an Isso database" in wrong_tables.stderr
    assert "'threads'" in wrong_tables.stderr
    assert not_sqlite.returncode == 2 and "not SQLite" in not_sqlite.stderr
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert (await table_counts(database_url))["comments"] == 0


async def _empty(url: str) -> None:
    """No row of any import is left: posts, threads, aliases, comments, events, votes."""
    counts = await table_counts(url)
    assert set(counts.values()) == {0}, counts


async def _undone(url: str) -> None:
    """The one run there was is marked undone, and nothing it wrote is left."""
    await _empty(url)
    assert [r["outcome"] for r in await rows(url, "SELECT outcome FROM import_runs")] == ["undone"]


async def _boom_trigger(url: str) -> None:
    db = await open_db(url)
    try:
        async with db.transaction() as conn:
            if db.dialect == "sqlite":
                await conn.execute(
                    "CREATE TRIGGER boom BEFORE INSERT ON comments WHEN NEW.author = 'Boom' "
                    "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
                )
            else:
                await conn.execute(
                    "CREATE FUNCTION boom() RETURNS trigger AS $f$ BEGIN "
                    "IF NEW.author = 'Boom' THEN RAISE EXCEPTION 'disk on fire'; END IF; "
                    "RETURN NEW; END $f$ LANGUAGE plpgsql"
                )
                await conn.execute(
                    "CREATE TRIGGER boom BEFORE INSERT ON comments "
                    "FOR EACH ROW EXECUTE FUNCTION boom()"
                )
    finally:
        await db.close()


async def test_failure_half_way_leaves_nothing_behind(database_url: str, tmp_path: Path) -> None:
    """A database error in a late batch undoes the earlier, committed batches too."""
    from tests.helpers.servers import make_settings, serve

    async with serve(make_settings(database_url, tmp_path)) as server:
        await add_post(server, "existing", "Existing", author="A", body_html="<p>x</p>")
        async with server.client() as client:
            native = await client.post(
                "/api/comments",
                json={
                    "uri": "/posts/existing",
                    "author": "Nat",
                    "email": "n@example.org",
                    "text": "native comment",
                },
            )
            assert native.status_code == 201
        await _boom_trigger(database_url)
        before = await table_counts(database_url)
        items = [
            wxr_item(
                i, f"post-{i}", wxr_comment(1, f"text {i}") + wxr_comment(2, f"reply {i}", parent=1)
            )
            for i in range(1, 6)
        ]
        # A draft's comments stay at its address: here the existing post's thread.
        items.insert(
            0,
            wxr_item(
                99,
                "existing",
                wxr_comment(1, "joins existing"),
                link="https://blog.example/posts/existing",
                status="draft",
            ),
        )
        items.append(wxr_item(50, "late", wxr_comment(1, "never", author="Boom")))
        path = tmp_path / "fails.xml"
        path.write_text(wxr("".join(items)))
        async with server.client() as client:
            cached = (await client.get("/api/comments", params={"uri": "/posts/existing"})).json()
        with pytest.raises(DatabaseError, match="disk on fire"):
            await import_into(database_url, "wordpress", path, batch_size=2)
        after = await table_counts(database_url)
        assert {k: after[k] for k in ("posts", "threads", "thread_aliases", "comments")} == {
            k: before[k] for k in ("posts", "threads", "thread_aliases", "comments")
        }
        runs = await rows(database_url, "SELECT outcome FROM import_runs")
        assert [r["outcome"] for r in runs] == ["undone"]
        async with server.client() as client:
            read = (await client.get("/api/comments", params={"uri": "/posts/existing"})).json()
        assert [c["author"] for c in read["comments"]] == ["Nat"]
        # The imported comment was visible for a while: its removal is an event, not a gap.
        assert read["cursor"] == cached["cursor"] + 2
        events = await rows(
            database_url,
            "SELECT type FROM events e JOIN posts p "
            "ON p.thread_id = e.thread_id WHERE p.slug = 'existing' ORDER BY seq",
        )
        assert [e["type"] for e in events] == ["comment.created", "comment.deleted"]


async def test_a_failed_import_takes_its_votes_and_closed_threads_with_it(
    database_url: str, tmp_path: Path
) -> None:
    """Votes and a closed thread written by committed batches go when a later batch fails."""
    await _boom_trigger(database_url)

    def comment(key: str, author: str, votes: dict[str, int]) -> dict[str, Any]:
        return {
            "key": key,
            "parent": None,
            "status": "approved",
            "author": author,
            "email": "",
            "created": "2024-01-02T03:04:05.000000Z",
            "text": "t",
            "html": "<p>t</p>",
            "pinned": True,
            "votes": votes,
        }

    doc = {
        "format": FORMAT,
        "version": VERSION,
        "posts": [],
        "threads": [
            {
                "uri": "/first",
                "closed": True,
                "closed_at": "2024-02-01T00:00:00.000000Z",
                "comments": [comment("v-1", "Ann", {"anon:a1": 1, "sso:u1": -1})],
            },
            {"uri": "/second", "comments": [comment("v-2", "Boom", {"anon:a1": 1})]},
        ],
    }
    path = tmp_path / "fails.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(DatabaseError, match="disk on fire"):
        await import_into(database_url, "kibitz", path, batch_size=1)
    await _undone(database_url)


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere() -> None:
    """tqdm draws on a terminal; a pipe or log gets plain lines and a closing line."""
    import fcntl
    import io
    import pty
    import select
    import struct
    import termios

    from server.portability.importers.progress import Progress

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    with os.fdopen(follower, "w") as terminal:
        bar = Progress(10, stream=terminal)
        bar.update(10)
        bar.close()
        terminal.flush()
        drawn = ""
        while select.select([leader], [], [], 0.5)[0]:
            drawn += os.read(leader, 4096).decode()
    os.close(leader)
    assert "10/10" in drawn and "|" in drawn
    plain = io.StringIO()
    lines = Progress(10, stream=plain, every=0)
    lines.update(4)
    lines.close()
    assert plain.getvalue().splitlines() == [
        "import: 4 of 10 comments (40%)",
        "import: done, 4 comments written",
    ]


def _large_wxr(path: Path, posts: int = 200, per_post: int = 50) -> None:
    path.write_text(
        wxr(
            "".join(
                wxr_item(
                    p,
                    f"post-{p}",
                    "".join(wxr_comment(c, f"comment {p}.{c}") for c in range(1, per_post + 1)),
                )
                for p in range(1, posts + 1)
            )
        )
    )


def _as_in_a_terminal() -> None:
    """SIGINT as a terminal's Ctrl-C delivers it. A test run started in the background by a
    non-interactive shell (``pytest &``) has SIGINT ignored, and a child inherits that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def _start_import(url: str, tmp_path: Path, path: Path) -> subprocess.Popen[str]:
    """A real `kibitz import` in small batches; returns once it has committed some."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "import", "wordpress", str(path), "--batch-size", "50"],
        preexec_fn=_as_in_a_terminal,
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), **_env(url, tmp_path)},
    )
    for _ in range(600):
        await asyncio.sleep(0.05)
        try:
            if (await table_counts(url))["comments"] > 0:
                return proc
        except DatabaseError:
            pass  # not migrated yet
        if proc.poll() is not None:
            raise AssertionError(proc.communicate())
    proc.kill()
    proc.communicate()
    raise AssertionError("the import wrote nothing in 30 s")


@pytest.mark.timeout(180)
async def test_ctrl_c_undoes_the_import(database_url: str, tmp_path: Path) -> None:
    """SIGINT in the middle of an import exits 130 and leaves no imported row behind."""
    path = tmp_path / "large.xml"
    _large_wxr(path)
    proc = await _start_import(database_url, tmp_path, path)
    proc.send_signal(signal.SIGINT)
    _out, err = await asyncio.to_thread(proc.communicate, None, 60)
    assert proc.returncode == 130, err
    await _undone(database_url)


@pytest.mark.timeout(180)
async def test_a_killed_import_is_removed_by_the_next(database_url: str, tmp_path: Path) -> None:
    """After `kill -9` mid-import, the next `kibitz import` removes the partial run first."""
    path = tmp_path / "large.xml"
    _large_wxr(path)
    proc = await _start_import(database_url, tmp_path, path)
    proc.kill()
    await asyncio.to_thread(proc.communicate, None, 60)
    assert (await table_counts(database_url))["comments"] > 0
    result = await asyncio.to_thread(
        _cli,
        _env(database_url, tmp_path),
        "import",
        "wordpress",
        str(corpus("wordpress/wpimporter-slashes.xml")),
    )
    assert result.returncode == 0, result.stderr
    assert f"removed the unfinished wordpress import of {path}" in result.stderr
    left = await rows(database_url, "SELECT source FROM comments")
    assert [r["source"] for r in left] == ["wordpress:1:1"]
    assert (await table_counts(database_url))["posts"] == 1
