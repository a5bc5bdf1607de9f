"""Hypothesis fuzzes the importers' inputs: kibitz JSON, WXR, Disqus XML and Isso SQLite.

Property: reading any file either gives records that pass the API's value checks, or refuses
the import with ImportRefused (one line, exit 2 on the command line) -- never another
exception, which would be a traceback and exit 1. No database is needed: what is written
is exactly what `checked` lets through (tests/portability/test_import_hostile.py covers
the writing).
"""

from __future__ import annotations

import json
import sqlite3
import string
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.portability.export import FORMAT, VERSION
from server.portability.importers import disqus, isso, kibitz, wordpress
from server.portability.importers.checks import checked, scanned
from server.portability.importers.report import ImportRefused, Report
from tests.helpers.fuzzing import examples, long_run

JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
TEXTISH = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "0999-01-01T00:00:00Z", "2024-02-30", "http://[::1", "a@b", "\ud800x"]),
    JSON_VALUE,
)
COMMENT_FIELDS = [
    "key",
    "parent",
    "status",
    "author",
    "email",
    "website",
    "address",
    "staff",
    "created",
    "edited",
    "reason",
    "text",
    "html",
]
# Pins, votes and closing: near-valid values (voters of both kinds, counts around the limits)
# beside anything at all.
VOTER = st.sampled_from(["anon:a1", "sso:42", "anon:", "sso:\x00", "bob", "anon:\ud800"]) | st.text(
    max_size=8
)
COUNT = st.integers(-2, 3) | st.sampled_from([2**31 - 1, 2**31, 2**63]) | TEXTISH
STANDING = {
    "pinned": st.booleans() | TEXTISH,
    "up": COUNT,
    "down": COUNT,
    "votes": st.dictionaries(
        VOTER, st.sampled_from([1, -1, 0, 2, True, 1.0]) | JSON_VALUE, max_size=4
    )
    | TEXTISH,
}


def fuzz_settings(default: int) -> settings:
    return settings(
        max_examples=examples(default),
        derandomize=not long_run(),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def read_all(source: Any) -> None:
    """Scan and read ``source`` as `kibitz import` does: only ImportRefused may come out."""
    try:
        scanned(source.scan)
        for _ in checked(source.records(), source.report):
            pass
    except ImportRefused as refused:
        assert "\n" not in str(refused)


def write(data: bytes | str, suffix: str) -> str:
    with tempfile.NamedTemporaryFile("wb", suffix=suffix, delete=False) as f:
        f.write(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
        return f.name


@fuzz_settings(30)
@given(
    comments=st.lists(
        st.fixed_dictionaries(
            {"key": st.text(min_size=1, max_size=8), "status": st.sampled_from(["approved", "x"])},
            optional={n: TEXTISH for n in COMMENT_FIELDS if n not in ("key", "status")} | STANDING,
        ),
        max_size=4,
    ),
    thread=st.fixed_dictionaries(
        {"uri": TEXTISH},
        optional={
            "title": TEXTISH,
            "aliases": TEXTISH,
            "created": TEXTISH,
            "closed": st.none() | st.booleans() | TEXTISH,
            "closed_at": st.sampled_from(["2024-02-01T00:00:00Z", "2024-02-30"]) | TEXTISH,
        },
    ),
)
def test_any_kibitz_export_is_read_or_refused(
    comments: list[dict[str, Any]], thread: dict[str, Any]
) -> None:
    """Any kibitz JSON document gives checked records or one ImportRefused line, pins,
    counts, votes and closing included."""
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "posts": [],
        "threads": [{**thread, "comments": comments}],
    }
    path = write(json.dumps(doc, ensure_ascii=True), ".json")
    try:
        read_all(kibitz.Source(path, Report("kibitz", path)))
    finally:
        Path(path).unlink()


INT64 = st.integers(-(2**63), 2**63 - 1)  # what SQLite can store
XML_TEXT = st.text(alphabet=string.printable + "é€\u202e", max_size=30)


@fuzz_settings(30)
@given(
    fmt=st.sampled_from(["wordpress", "disqus"]),
    body=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "wp:comment_content",
                    "wp:comment_author_email",
                    "wp:comment_date_gmt",
                    "wp:comment_id",
                    "wp:comment_parent",
                    "wp:comment_approved",
                    "link",
                    "title",
                    "wp:post_id",
                    "wp:post_type",
                    "wp:status",
                    "message",
                    "createdAt",
                    "isDeleted",
                    "isSpam",
                    "email",
                    "name",
                    "id",
                    "wp:comment_author_url",
                    "pubDate",
                ]
            ),
            XML_TEXT,
        ),
        max_size=8,
    ),
    garbage=st.none() | st.binary(max_size=60),
)
def test_any_xml_export_is_read_or_refused(
    fmt: str, body: list[tuple[str, str]], garbage: bytes | None
) -> None:
    """Random WXR and Disqus documents (and random bytes) give records or ImportRefused."""
    from xml.sax.saxutils import escape

    fields = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in body)
    if fmt == "wordpress":
        data = (
            '<?xml version="1.0"?><rss xmlns:wp="http://wordpress.org/export/1.2/" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
            f"<wp:wxr_version>1.2</wp:wxr_version><item>{fields}<wp:comment>{fields}</wp:comment>"
            "</item></channel></rss>"
        )
    else:
        data = (
            '<?xml version="1.0"?><disqus xmlns="http://disqus.com" '
            'xmlns:dsq="http://disqus.com/disqus-internals">'
            f'<thread dsq:id="1">{fields}</thread><post dsq:id="2">{fields}'
            '<thread dsq:id="1"/></post></disqus>'
        )
    path = write(garbage if garbage is not None else data, ".xml")
    module = wordpress if fmt == "wordpress" else disqus
    try:
        read_all(module.Source(path, Report(fmt, path)))
    finally:
        Path(path).unlink()


@fuzz_settings(25)
@given(
    rows=st.lists(
        st.tuples(*[st.none() | INT64 | st.floats() | XML_TEXT | st.binary(max_size=8)] * 11),
        max_size=4,
    ),
    thread=st.tuples(st.integers(0, 3), st.none() | XML_TEXT | INT64, st.none() | XML_TEXT),
)
def test_any_isso_file_is_read_or_refused(
    rows: list[tuple[Any, ...]], thread: tuple[Any, ...]
) -> None:
    """An Isso file with values of any type in any column gives records or ImportRefused."""
    path = write(b"", ".db")
    Path(path).unlink()
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE threads (id INTEGER PRIMARY KEY, uri TEXT, title TEXT)")
        conn.execute(
            "CREATE TABLE comments (tid, id, parent, created, modified, mode, remote_addr, "
            "text, author, email, website)"
        )
        conn.execute("INSERT INTO threads VALUES (?, ?, ?)", thread)
        conn.executemany("INSERT INTO comments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.close()
    try:
        read_all(isso.Source(path, Report("isso", path)))
    finally:
        Path(path).unlink()
