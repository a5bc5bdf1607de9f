"""Crafted import files: refused with one line naming the record (exit 2), checked like the
API's input, and nothing they hold can break a page later (issue 12)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from server.portability.export import FORMAT, VERSION
from server.portability.importers import isso
from server.portability.importers.report import ImportRefused, Report
from tests.helpers import fuzzing
from tests.helpers.imports import table_counts
from tests.helpers.servers import make_settings, serve
from tests.helpers.staff import add_staff, sign_in


def cli(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"KIBITZ_DATABASE_URL": url, "KIBITZ_DATA_DIR": str(tmp_path / "data")}
    return fuzzing.cli(env, *args)


def comment(key: str, **fields: Any) -> dict[str, Any]:
    return {
        "key": key,
        "parent": None,
        "status": "approved",
        "author": "Ada",
        "email": "ada@example.org",
        "website": None,
        "address": None,
        "staff": None,
        "created": "2024-01-02T03:04:05.000000Z",
        "edited": None,
        "reason": None,
        "text": "Hello",
        "html": "<p>Hello</p>",
        **fields,
    }


def export_file(tmp_path: Path, *comments: dict[str, Any], **thread: Any) -> Path:
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "posts": [],
        "threads": [
            {
                "uri": "/old/thread",
                "title": "Old",
                "created": None,
                "aliases": [],
                "comments": list(comments),
                **thread,
            }
        ],
    }
    path = tmp_path / "crafted.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def refused_in_one_line(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("kibitz:")]
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


async def test_a_21_mb_comment_is_refused_naming_it(database_url: str, tmp_path: Path) -> None:
    """A comment far over the API's 10,000 characters refuses the import; nothing is written."""
    path = export_file(
        tmp_path, comment("ok-1"), comment("huge-2", text="x" * 21_000_000, html="<p>x</p>")
    )
    done = await asyncio.to_thread(cli, database_url, tmp_path, "import", "kibitz", str(path))
    refused_in_one_line(done, "'huge-2'", "text")
    assert (await table_counts(database_url))["comments"] == 0


@pytest.mark.parametrize(
    ("fields", "thread", "needle"),
    [
        ({"address": 12345}, {}, "address"),
        ({"website": 5}, {}, "comments[0].website"),
        ({"reason": ["x"]}, {}, "reason"),
        ({"author": "Ada\udc80\ud800"}, {}, "author"),
        ({"created": "0000-13-45T00:00:00Z"}, {}, "created"),
        ({}, {"aliases": 5}, "malformed"),
        ({}, {"uri": "http://[::1"}, "uri"),
        # Pins, votes and closing (docs/export.md): wrong types and impossible values.
        ({"pinned": "yes"}, {}, "comments[0].pinned"),
        ({"pinned": None}, {}, "comments[0].pinned"),
        ({"up": -1}, {}, "comments[0].up"),
        ({"down": 2**31}, {}, "comments[0].down"),
        ({"up": True}, {}, "comments[0].up"),
        ({"up": 1.5}, {}, "comments[0].up"),
        ({"up": 0, "votes": {"anon:x1": 1}}, {}, "fewer than the 1 up votes listed"),
        ({"votes": [["anon:x1", 1]]}, {}, "comments[0].votes"),
        ({"votes": {"bob": 1}}, {}, "'bob' is not anon:"),
        ({"votes": {"anon:": 1}}, {}, "comments[0].votes"),
        ({"votes": {"sso:" + "x" * 300: 1}}, {}, "comments[0].votes"),
        ({"votes": {"anon:a\u0000b": 1}}, {}, "comments[0].votes"),
        ({"votes": {"anon:a\udc80": 1}}, {}, "comments[0].votes"),
        ({"votes": {"anon:x1": 2}}, {}, "a vote is 1 or -1"),
        ({"votes": {"anon:x1": True}}, {}, "a vote is 1 or -1"),
        ({"votes": {"anon:x1": "1"}}, {}, "a vote is 1 or -1"),
        ({}, {"closed": "yes"}, "threads[0].closed"),
        ({}, {"closed": 1}, "threads[0].closed"),
        ({}, {"closed": True, "closed_at": "yesterday"}, "threads[0].closed_at"),
        ({}, {"closed": True, "closed_at": 5}, "threads[0].closed_at"),
    ],
)
async def test_malformed_records_exit_2_with_one_line(
    database_url: str, tmp_path: Path, fields: dict[str, Any], thread: dict[str, Any], needle: str
) -> None:
    """Wrong types, lone surrogates, impossible dates, unreadable uris: exit 2, one line."""
    path = export_file(tmp_path, comment("bad-1", **fields), **thread)
    done = await asyncio.to_thread(cli, database_url, tmp_path, "import", "kibitz", str(path))
    refused_in_one_line(done, needle)
    assert (await table_counts(database_url))["comments"] == 0


async def test_old_dates_and_percent_reasons_never_break_a_page(
    database_url: str, tmp_path: Path
) -> None:
    """A comment from the year 999 and a held reason with '%' import and read back everywhere."""
    path = export_file(
        tmp_path,
        comment("old-1", created="0999-01-02T03:04:05.000000Z"),
        comment("held-2", status="pending", reason="100% %s %(x)s spam", text="held"),
        uri="/posts/old",
    )
    done = await asyncio.to_thread(cli, database_url, tmp_path, "import", "kibitz", str(path))
    assert done.returncode == 0, done.stderr
    exported = await asyncio.to_thread(cli, database_url, tmp_path, "export")
    assert exported.returncode == 0, exported.stderr
    assert "0999-01-02T03:04:05" in exported.stdout
    async with serve(make_settings(database_url, tmp_path)) as server:
        await add_staff(server, "boss", "admin")
        async with server.client() as client:
            api = await client.get("/api/comments", params={"uri": "/posts/old"})
            feed = await client.get("/feeds/thread.atom", params={"uri": "/posts/old"})
            site = await client.get("/feeds/comments.atom")
            await sign_in(client, "boss")
            queue = await client.get("/admin/queue")
    assert api.status_code == 200, api.text
    assert api.json()["comments"][0]["created"] == "0999-01-02T03:04:05Z"
    assert feed.status_code == 200 and site.status_code == 200
    assert queue.status_code == 200 and "100% %s %(x)s spam" in queue.text


async def test_files_without_pins_votes_or_closing_still_import(
    database_url: str, tmp_path: Path
) -> None:
    """An export from before pins, votes and closing imports as before; counts without their
    voters, or voters without counts, fill in; a pinned reply is not pinned (flagged)."""
    path = export_file(
        tmp_path,
        comment("plain-1"),
        comment("counts-2", up=7, down=2),
        comment("votes-3", votes={"anon:b2": 1, "sso:u1": -1, "anon:a1": 1}),
        comment("reply-4", parent="plain-1", pinned=True),
    )
    done = await asyncio.to_thread(cli, database_url, tmp_path, "import", "kibitz", str(path))
    assert done.returncode == 0, done.stderr
    assert "flagged: pin on a reply dropped: 1" in done.stdout
    exported = await asyncio.to_thread(cli, database_url, tmp_path, "export")
    thread = json.loads(exported.stdout)["threads"][0]
    assert (thread["closed"], thread["closed_at"]) == (None, None)
    assert [
        (c["key"], c["pinned"], c["up"], c["down"], c["votes"]) for c in thread["comments"]
    ] == [
        ("plain-1", False, 0, 0, {}),
        ("counts-2", False, 7, 2, {}),
        ("votes-3", False, 2, 1, {"anon:a1": 1, "anon:b2": 1, "sso:u1": -1}),
        ("reply-4", False, 0, 0, {}),
    ]
    async with serve(make_settings(database_url, tmp_path)) as server, server.client() as client:
        read = (await client.get("/api/comments", params={"uri": "/old/thread"})).json()
    assert read["closed"] is False
    assert [(c["pinned"], c["up"], c["down"]) for c in read["comments"]] == [
        (False, 0, 0),
        (False, 7, 2),
        (False, 2, 1),
        (False, 0, 0),
    ]


def isso_file(path: Path, *, view: bool) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE threads (id INTEGER PRIMARY KEY, uri TEXT, title TEXT)")
        columns = (
            "tid, id, parent, created, modified, mode, remote_addr, text, author, email, website"
        )
        if view:
            conn.execute(
                f"CREATE VIEW comments ({columns}) AS WITH RECURSIVE n(i) AS "
                "(SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                "SELECT 1, i, NULL, 0, NULL, 1, '', 'x', 'a', '', '' FROM n"
            )
        else:
            conn.execute(f"CREATE TABLE comments ({columns})")
    return path


async def test_an_isso_file_whose_comments_is_a_view_is_refused_at_once(
    database_url: str, tmp_path: Path
) -> None:
    """A recursive view named 'comments' is refused as not a table, in well under a minute."""
    path = isso_file(tmp_path / "view.db", view=True)
    started = time.monotonic()
    done = await asyncio.to_thread(cli, database_url, tmp_path, "import", "isso", str(path))
    refused_in_one_line(done, "'comments' is not a table")
    assert time.monotonic() - started < 60


def test_reading_an_isso_file_has_a_time_limit(tmp_path: Path) -> None:
    """A read that outlasts the time limit is interrupted and refused with the reason."""
    path = isso_file(tmp_path / "big.db", view=False)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO threads VALUES (1, '/a', 'A')")
        conn.executemany(
            "INSERT INTO comments VALUES (1, ?, NULL, 0, NULL, 1, '', 'x', 'a', '', '')",
            [(i,) for i in range(1, 50_001)],
        )
    source = isso.Source(str(path), Report("isso", str(path)), time_limit=0.0)
    with pytest.raises(ImportRefused, match="took longer than"):
        list(source.records())
