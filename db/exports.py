"""Reading everything out for ``kibitz export``, a page at a time.

Ordering is decided here so that an export is deterministic: posts by slug and threads by uri
(sorted in Python, since PostgreSQL's collation and SQLite's byte order disagree), comments by
``(created, id)``, paged by that key so a thread of any size streams in bounded memory.
Each page's votes are read with it, by comment id, ordered by voter.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db.database import Connection, Database
from db.models import as_datetime, maybe_datetime

PAGE = 1000
CHUNK = 500  # parameters per IN (…) list: well below both engines' limits


@dataclass(frozen=True)
class ExportedPost:
    slug: str
    title: str
    author: str
    body_html: str
    categories: tuple[str, ...]
    language: str | None
    published: datetime
    source: str | None


@dataclass(frozen=True)
class ExportedThread:
    id: int
    uri: str
    title: str | None
    created: datetime
    aliases: tuple[str, ...]
    # None: nobody decided; True: closed; False: reopened by staff (never closed automatically).
    closed: bool | None = None
    closed_at: datetime | None = None  # when ``closed`` was decided, where known


@dataclass(frozen=True)
class ExportedComment:
    """A comment with its parent named by key: ids mean nothing in another database."""

    key: str
    parent_key: str | None
    author: str
    email: str
    website: str | None
    text: str
    html: str
    status: str
    reason: str | None
    address: str | None
    staff: str | None
    created: datetime
    edited: datetime | None
    sub: str | None = None  # a signed-in (single sign-on) reader's user id on the host site
    pinned: bool = False
    up: int = 0
    down: int = 0
    # (voter, 1 or -1), ordered by voter: the opaque ids the votes table holds, nothing else.
    votes: tuple[tuple[str, int], ...] = ()


def comment_key(source: str | None, comment_id: int) -> str:
    """Imported comments keep their source id; native ones are named by their id."""
    return source if source else f"kibitz:{comment_id}"


class ExportReader:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def posts(self) -> list[ExportedPost]:
        async with self.db.read() as conn:
            rows = await conn.fetch(
                "SELECT slug, title, author, body_html, categories, language, published, source "
                "FROM posts"
            )
        posts = [
            ExportedPost(
                r["slug"],
                r["title"],
                r["author"],
                r["body_html"],
                tuple(json.loads(r["categories"] or "[]")),
                r["language"],
                as_datetime(r["published"]),
                r["source"],
            )
            for r in rows
        ]
        return sorted(posts, key=lambda p: p.slug)

    async def threads(self) -> list[ExportedThread]:
        async with self.db.read() as conn:
            rows = await conn.fetch(
                "SELECT id, uri, title, created, closed, closed_at FROM threads"
            )
            alias_rows = await conn.fetch("SELECT uri, thread_id FROM thread_aliases")
        aliases: dict[int, list[str]] = {}
        for r in alias_rows:
            aliases.setdefault(r["thread_id"], []).append(r["uri"])
        threads = [
            ExportedThread(
                r["id"],
                r["uri"],
                r["title"],
                as_datetime(r["created"]),
                tuple(sorted(aliases.get(r["id"], ()))),
                None if r["closed"] is None else r["closed"] == 1,
                maybe_datetime(r["closed_at"]),
            )
            for r in rows
        ]
        return sorted(threads, key=lambda t: t.uri)

    async def comments(self, thread_id: int) -> AsyncIterator[ExportedComment]:
        after: tuple[Any, int] | None = None
        while True:
            async with self.db.read() as conn:
                if after is None:
                    rows = await conn.fetch(
                        _COMMENTS + " ORDER BY c.created, c.id LIMIT $2", thread_id, PAGE
                    )
                else:
                    rows = await conn.fetch(
                        _COMMENTS + " AND (c.created > $3 OR (c.created = $3 AND c.id > $4))"
                        " ORDER BY c.created, c.id LIMIT $2",
                        thread_id,
                        PAGE,
                        *after,
                    )
                votes = await _votes(conn, [r["id"] for r in rows])
            for r in rows:
                yield ExportedComment(
                    key=comment_key(r["source"], r["id"]),
                    parent_key=(
                        None
                        if r["parent_id"] is None
                        else comment_key(r["parent_source"], r["parent_id"])
                    ),
                    author=r["author"],
                    email=r["email"],
                    website=r["website"],
                    text=r["text"],
                    html=r["html"],
                    status=r["status"],
                    reason=r["reason"],
                    address=r["address"],
                    staff=r["staff_name"],
                    created=as_datetime(r["created"]),
                    edited=maybe_datetime(r["edited"]),
                    sub=r["sso_sub"],
                    pinned=r["pinned"] == 1,
                    up=r["up"],
                    down=r["down"],
                    votes=tuple(sorted(votes.get(r["id"], ()))),
                )
            if len(rows) < PAGE:
                return
            after = (rows[-1]["created"], rows[-1]["id"])


_COMMENTS = (
    "SELECT c.id, c.parent_id, c.author, c.email, c.website, c.text, c.html, c.status, "
    "c.reason, c.address, c.created, c.edited, c.source, c.sso_sub, c.pinned, c.up, c.down, "
    "p.source AS parent_source, "
    "s.name AS staff_name FROM comments c LEFT JOIN comments p ON p.id = c.parent_id "
    "LEFT JOIN staff s ON s.id = c.staff_id WHERE c.thread_id = $1"
)


async def _votes(conn: Connection, comment_ids: list[int]) -> dict[int, list[tuple[str, int]]]:
    """The votes on these comments: ``comment id → [(voter, value)]``."""
    found: dict[int, list[tuple[str, int]]] = {}
    for start in range(0, len(comment_ids), CHUNK):
        chunk = comment_ids[start : start + CHUNK]
        marks = ", ".join(f"${i + 1}" for i in range(len(chunk)))
        rows = await conn.fetch(
            f"SELECT comment_id, voter, value FROM votes WHERE comment_id IN ({marks})", *chunk
        )
        for r in rows:
            found.setdefault(r["comment_id"], []).append((r["voter"], int(r["value"])))
    return found
