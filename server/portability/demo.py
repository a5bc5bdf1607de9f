"""Demo content for ``make run``: two posts with small threaded discussions, seeded once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from db.comments import CommentStore, NewComment
from db.database import Database
from db.models import Status, as_datetime
from db.posts import PostStore
from server.discussion.markup import clean_article, render_comment

DEMO = Path(__file__).resolve().parents[2] / "web" / "demo" / "posts.json"


async def seed(db: Database) -> int:
    """Create the demo posts that are missing; return how many were created."""
    posts, comments = PostStore(db), CommentStore(db)
    created = 0
    for item in json.loads(DEMO.read_text(encoding="utf-8")):
        if await posts.by_slug(item["slug"]):
            continue
        post = await posts.add(
            slug=item["slug"],
            title=item["title"],
            author=item["author"],
            body_html=clean_article(item["body"]),
            categories=item["categories"],
            language=item["language"],
            published=as_datetime(item["published"]),
            source=f"demo:{item['slug']}",
        )
        ids: dict[str, int] = {}
        for entry in item["comments"]:
            comment = await _add(
                comments,
                post.uri,
                entry,
                ids.get(entry.get("parent", "")),
                f"demo:{item['slug']}:{entry['key']}",
            )
            ids[entry["key"]] = comment
        created += 1
    return created


async def _add(
    store: CommentStore, uri: str, entry: dict[str, Any], parent: int | None, source: str
) -> int:
    comment, _ = await store.add(
        uri,
        NewComment(
            author=entry["author"],
            email=entry["email"],
            website=entry.get("website"),
            text=entry["text"],
            html=render_comment(entry["text"]),
            status=Status.APPROVED,
            parent_id=parent,
            created=as_datetime(entry["created"]),
            source=source,
        ),
        create_thread=False,
    )
    return comment.id
