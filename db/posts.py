"""Posts that kibitz hosts itself, each with its thread at ``/posts/{slug}``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from db.comments import ensure_thread
from db.database import Database
from db.errors import Conflict
from db.models import Post, now

POST_COLUMNS = (
    "p.id, p.slug, p.title, p.author, p.body_html, p.categories, p.language, p.published, "
    "p.thread_id"
)


class PostStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        *,
        slug: str,
        title: str,
        author: str,
        body_html: str,
        categories: Sequence[str] = (),
        language: str | None = None,
        published: datetime | None = None,
        source: str | None = None,
        aliases: Sequence[str] = (),
    ) -> Post:
        """Create a post and its thread; a slug that exists raises :class:`Conflict`."""
        async with self.db.transaction() as conn:
            if await conn.fetchval("SELECT 1 FROM posts WHERE slug = $1", slug):
                raise Conflict(f"a post with slug {slug!r} exists")
            thread = await ensure_thread(conn, f"/posts/{slug}", title)
            for alias in aliases:
                if alias != thread.uri:
                    await conn.execute(
                        "INSERT INTO thread_aliases (uri, thread_id) VALUES ($1, $2) "
                        "ON CONFLICT (uri) DO NOTHING",
                        alias,
                        thread.id,
                    )
            row = await conn.fetchrow(
                "INSERT INTO posts (slug, title, author, body_html, categories, language, "
                "published, thread_id, source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                f"RETURNING {POST_COLUMNS.replace('p.', '')}",
                slug,
                title,
                author,
                body_html,
                json.dumps(list(categories), ensure_ascii=False),
                language,
                published or now(),
                thread.id,
                source,
            )
        assert row is not None
        return Post.from_row(row)

    async def by_slug(self, slug: str) -> Post | None:
        # Every post page starts here, so it takes the backend's cheapest path.
        row = await self.db.lookup(f"SELECT {POST_COLUMNS} FROM posts p WHERE p.slug = $1", slug)
        return Post.from_row(row) if row else None

    async def page_version(
        self, slug: str
    ) -> tuple[tuple[Any, ...], int, tuple[int, int, bool | None]] | None:
        """The post's row as a hashable value, its thread's id and version, in one read.

        Together they name everything a cached post page shows (the post as stored and one
        visible state of its thread: ``last_seq``, ``votes_seq``, closed), without building
        the :class:`Post`.
        """
        row = await self.db.lookup(
            f"SELECT {POST_COLUMNS}, t.id AS thread_ref, t.last_seq AS thread_last_seq, "
            "t.votes_seq AS thread_votes_seq, t.closed AS thread_closed FROM posts p "
            "JOIN threads t ON t.id = p.thread_id WHERE p.slug = $1",
            slug,
        )
        if row is None:
            return None
        # By position: the Row protocol indexes but does not iterate (the drivers' rows differ).
        stored = tuple(row[i] for i in range(POST_COLUMNS.count(",") + 1))
        closed = row["thread_closed"]
        return (
            stored,
            int(row["thread_ref"]),
            (
                int(row["thread_last_seq"]),
                int(row["thread_votes_seq"]),
                None if closed is None else bool(closed),
            ),
        )

    async def exists_for_uri(self, uri: str) -> bool:
        if not uri.startswith("/posts/"):
            return False
        async with self.db.read() as conn:
            found = await conn.fetchval(
                "SELECT 1 FROM posts WHERE slug = $1", uri.removeprefix("/posts/")
            )
        return found is not None

    async def newest(self, limit: int = 50, offset: int = 0) -> list[Post]:
        """Posts newest first, each with its approved-comment count, in one query."""
        async with self.db.read() as conn:
            rows = await conn.fetch(
                f"SELECT {POST_COLUMNS}, (SELECT COUNT(*) FROM comments c "
                "WHERE c.thread_id = p.thread_id AND c.status = 'approved') AS comment_count "
                "FROM posts p ORDER BY p.published DESC, p.id DESC LIMIT $1 OFFSET $2",
                limit,
                offset,
            )
        return [Post.from_row(r) for r in rows]

    async def count(self) -> int:
        async with self.db.read() as conn:
            return int(await conn.fetchval("SELECT COUNT(*) FROM posts"))
