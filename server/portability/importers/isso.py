"""Isso's SQLite database: its ``threads`` and ``comments`` tables, read-only.

Isso modes: 1 approved, 2 pending, 4 deleted (a placeholder kept for its replies). Isso keeps
what the commenter typed (Markdown), so the text is rendered as a new kibitz comment would be.
Anything that is not an Isso database (another SQLite file, or no SQLite at all) is refused
before a row is written. The SQL below reads Isso's file, an input format like WXR; kibitz's
own database is only ever touched through ``db/``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from db.imports import CommentIn, ThreadIn
from db.models import Status
from server.discussion.markup import render_comment
from server.discussion.uris import normalise_uri
from server.discussion.validation import MAX_AUTHOR, clean_text, normalise_website
from server.portability.importers.ordering import ParentsFirst
from server.portability.importers.report import ImportRefused, Report

REQUIRED = {
    "threads": {"id", "uri", "title"},
    "comments": {
        "tid",
        "id",
        "parent",
        "created",
        "modified",
        "mode",
        "remote_addr",
        "text",
        "author",
        "email",
        "website",
    },
}
MODES = {1: Status.APPROVED, 2: Status.PENDING, 4: Status.DELETED}


def _when(value: object) -> datetime | None:
    try:
        # Any column value may come here; whatever float() refuses means "no date".
        return datetime.fromtimestamp(float(value), UTC)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return None


class Source:
    fmt = "isso"

    def __init__(self, path: str, report: Report) -> None:
        self.path = path
        self.report = report

    def _open(self) -> sqlite3.Connection:
        if not Path(self.path).is_file():
            raise ImportRefused("no such file")
        try:
            conn = sqlite3.connect(f"file:{Path(self.path).resolve()}?mode=ro", uri=True)
            conn.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise ImportRefused(f"not an Isso database: not SQLite ({exc})") from None
        return conn

    def scan(self) -> int:
        conn = self._open()
        try:
            for table, columns in REQUIRED.items():
                found = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                if not found:
                    raise ImportRefused(f"not an Isso database: it has no {table!r} table")
                if missing := columns - found:
                    raise ImportRefused(
                        f"not an Isso database: table {table!r} lacks " + ", ".join(sorted(missing))
                    )
            return int(conn.execute("SELECT COUNT(*) FROM comments").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise ImportRefused(f"cannot read the Isso database: {exc}") from None
        finally:
            conn.close()

    def records(self) -> Iterator[ThreadIn | CommentIn]:
        conn = self._open()
        try:
            rows = conn.execute(
                "SELECT t.id AS tid, t.uri, t.title, c.id, c.parent, c.created, c.modified, "
                "c.mode, c.remote_addr, c.text, c.author, c.email, c.website "
                "FROM comments c JOIN threads t ON t.id = c.tid ORDER BY t.id, c.id"
            )
            current: int | None = None
            order = ParentsFirst(self.report)
            for (
                tid,
                uri,
                title,
                cid,
                parent,
                created,
                modified,
                mode,
                address,
                typed,
                author,
                email,
                website,
            ) in rows:
                if tid != current:
                    yield from order.finish()
                    order = ParentsFirst(self.report)
                    current = tid
                    yield ThreadIn(
                        f"isso:thread:{tid}",
                        normalise_uri(uri or "/"),
                        clean_text(title or "") or None,
                    )
                status = MODES.get(mode)
                if status is None:
                    status = Status.PENDING
                    self.report.flag(f"unknown Isso mode {mode}, kept as pending")
                when = _when(created)
                if when is None:
                    when = datetime.now(UTC)
                    self.report.flag("unreadable date, the import time used")
                text = clean_text(typed or "")
                yield from order.push(
                    CommentIn(
                        thread_key=f"isso:thread:{tid}",
                        source=f"isso:{cid}",
                        parent_source=f"isso:{parent}" if parent is not None else None,
                        author=clean_text(author or "").strip()[:MAX_AUTHOR] or "Anonymous",
                        email=clean_text(email or "").strip(),
                        website=normalise_website(clean_text(website or "")),
                        text=text,
                        html=render_comment(text) if text else "",
                        status=status,
                        created=when,
                        edited=_when(modified) if modified else None,
                        address=(address or None),
                    )
                )
            yield from order.finish()
            skipped = conn.execute(
                "SELECT COUNT(*) FROM comments WHERE tid NOT IN (SELECT id FROM threads)"
            ).fetchone()[0]
            if skipped:
                self.report.skip("orphan: unknown thread", int(skipped))
        except sqlite3.DatabaseError as exc:
            raise ImportRefused(f"cannot read the Isso database: {exc}") from None
        finally:
            conn.close()
