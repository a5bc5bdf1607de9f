"""``kibitz export``: every post, thread (with aliases) and comment as one JSON document.

The schema is documented in docs/export.md. Written a piece at a time (comments are paged
from the database), so an export of any size needs little memory; nothing in it depends on
when it was made, so exporting twice, or exporting what an import of it produced, gives the
same bytes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TextIO

from db.database import Database
from db.exports import ExportedComment, ExportReader

FORMAT = "kibitz-export"
VERSION = 1


def stamp(value: datetime | None) -> str | None:
    """Microseconds and ``Z``: both backends keep microseconds, so the round trip is exact."""
    if value is None:
        return None
    # isoformat pads the year to four digits (strftime's %Y does not for years before 1000).
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def comment_object(c: ExportedComment) -> dict[str, Any]:
    return {
        "key": c.key,
        "parent": c.parent_key,
        "status": c.status,
        "author": c.author,
        "email": c.email,
        "website": c.website,
        "address": c.address,
        "staff": c.staff,
        "sub": c.sub,
        "created": stamp(c.created),
        "edited": stamp(c.edited),
        "reason": c.reason,
        "text": c.text,
        "html": c.html,
        "pinned": c.pinned,
        "up": c.up,
        "down": c.down,
        "votes": dict(c.votes),
    }


async def write_export(db: Database, out: TextIO) -> dict[str, int]:
    """Write the document to ``out``; return how many posts, threads and comments it holds."""
    reader = ExportReader(db)
    counts = {"posts": 0, "threads": 0, "comments": 0}
    out.write(f'{{\n  "format": "{FORMAT}",\n  "version": {VERSION},\n  "posts": [')
    for i, post in enumerate(await reader.posts()):
        out.write(
            ("," if i else "")
            + "\n    "
            + _dump(
                {
                    "slug": post.slug,
                    "title": post.title,
                    "author": post.author,
                    "published": stamp(post.published),
                    "categories": list(post.categories),
                    "language": post.language,
                    "source": post.source,
                    "body_html": post.body_html,
                }
            )
        )
        counts["posts"] += 1
    out.write('\n  ],\n  "threads": [')
    for i, thread in enumerate(await reader.threads()):
        head = _dump(
            {
                "uri": thread.uri,
                "title": thread.title,
                "created": stamp(thread.created),
                "aliases": list(thread.aliases),
                "closed": thread.closed,
                "closed_at": stamp(thread.closed_at),
            }
        )
        out.write(("," if i else "") + "\n    " + head[:-1] + ', "comments": [')
        n = 0
        async for comment in reader.comments(thread.id):
            out.write(("," if n else "") + "\n      " + _dump(comment_object(comment)))
            n += 1
        out.write("\n    ]}" if n else "]}")
        counts["threads"] += 1
        counts["comments"] += n
    out.write("\n  ]\n}\n")
    return counts
