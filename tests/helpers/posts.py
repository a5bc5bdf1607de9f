"""Posts and comments for tests: ONE way to publish a post, add a stored comment, and post
the no-JavaScript form as a person would."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from db.comments import NewComment
from db.database import connect
from db.models import Comment, Post
from db.posts import PostStore
from server.discussion.markup import render_comment
from server.discussion.uris import normalise_uri
from tests.helpers.servers import Server
from tests.helpers.view import form_values, parse


async def add_post(
    target: Server | str,
    slug: str = "hello",
    title: str = "Hello",
    *,
    author: str = "Admin",
    body_html: str = "<p>The body.</p>",
    **extra: Any,
) -> Post:
    """Publish a post straight into the store: ``target`` is a running server, or the URL of a
    database no server in this process holds (tests that run ``kibitz serve`` as a process)."""
    fields = {"slug": slug, "title": title, "author": author, "body_html": body_html, **extra}
    if isinstance(target, str):
        db = await connect(target)
        try:
            return await PostStore(db).add(**fields)
        finally:
            await db.close()
    return await target.state.posts.add(**fields)  # type: ignore[no-any-return]


async def store_comment(
    server: Server,
    uri: str,
    author: str,
    *,
    parent: int | None = None,
    status: str = "approved",
    created: datetime | None = None,
    email: str = "someone@example.org",
    website: str | None = None,
    text: str | None = None,
    html: str | None = None,
    address: str | None = None,
    create_thread: bool = False,
    announce: bool = False,
) -> Comment:
    """Store a comment as given, past the posting policy (any status, any date).

    With ``announce`` the after-commit listeners hear of it as ``Discussion.submit`` would tell
    them (live readers, mail); without, only the store knows."""
    text = text or f"Words by {author}"
    comment, events = await server.state.comments.add(
        normalise_uri(uri),
        NewComment(
            author=author,
            email=email,
            website=website,
            text=text,
            html=render_comment(text) if html is None else html,
            status=status,
            parent_id=parent,
            created=created,
            address=address,
        ),
        create_thread=create_thread,
    )
    if announce:
        for listener in server.state.discussion.listeners.events:
            await listener(events)
    return comment  # type: ignore[no-any-return]


async def add_comment(server: Server, uri: str, author: str, **fields: Any) -> int:
    """``store_comment``, for tests that only need the new comment's id."""
    return int((await store_comment(server, uri, author, **fields)).id)


async def fill_and_post(
    client: httpx.AsyncClient, slug: str, path: str | None = None, **fields: str
) -> httpx.Response:
    """Load the page, fill in the form like a person, and submit it (no JavaScript)."""
    page = await client.get(path or f"/posts/{slug}")
    values = form_values(parse(page.text))
    values.update(fields)
    return await client.post(f"/posts/{slug}/comments", data=values)
