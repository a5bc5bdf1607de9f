"""Queries only moderators need: searching comments by status, and spotting duplicates."""

from __future__ import annotations

from db.comments import COLUMNS, FROM
from db.database import Database
from db.models import Comment, Status


def like_pattern(words: str) -> str:
    """A case-insensitive ``LIKE`` pattern matching ``words`` literally anywhere."""
    escaped = words.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ModerationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def search(
        self, status: str, query: str = "", *, limit: int = 100, offset: int = 0
    ) -> list[tuple[Comment, str]]:
        """Comments with ``status`` whose author, e-mail or text contains ``query``.

        Pending comments come oldest first (a queue); the other lists newest first. Each
        comment comes with its thread's uri.
        """
        order = "ASC" if status == Status.PENDING else "DESC"
        where, args = "c.status = $1", [status]
        if query.strip():
            args.append(like_pattern(query.strip()))
            where += (
                " AND (lower(c.author) LIKE $2 ESCAPE '\\' OR lower(c.email) LIKE $2 "
                "ESCAPE '\\' OR lower(c.text) LIKE $2 ESCAPE '\\')"
            )
        async with self.db.read() as conn:
            rows = await conn.fetch(
                f"SELECT {COLUMNS}, t.uri AS thread_uri {FROM} JOIN threads t "
                f"ON t.id = c.thread_id WHERE {where} ORDER BY c.id {order} "
                f"LIMIT {int(limit)} OFFSET {int(offset)}",
                *args,
            )
        return [(Comment.from_row(r), r["thread_uri"]) for r in rows]

    async def counts(self) -> dict[str, int]:
        async with self.db.read() as conn:
            rows = await conn.fetch("SELECT status, COUNT(*) AS n FROM comments GROUP BY status")
        found = {r["status"]: int(r["n"]) for r in rows}
        return {s.value: found.get(s, 0) for s in Status}


# The same trimmed text (by its digest) posted on a thread, or one of its aliases, since then:
# one indexed probe however many comments the thread has.
DUPLICATE = (
    "SELECT 1 FROM comments c WHERE c.thread_id IN ("
    " SELECT id FROM threads WHERE uri = {uri}"
    " UNION ALL SELECT thread_id FROM thread_aliases WHERE uri = {uri}) "
    "AND c.text_key = {key} AND c.created >= {since} LIMIT 1"
)
