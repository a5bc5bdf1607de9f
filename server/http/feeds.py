"""Atom 1.0 feeds (RFC 4287) of approved comments: the whole site, or one thread.

``GET /feeds/comments.atom`` lists the site's newest approved comments and
``GET /feeds/thread.atom?uri=U`` those of one thread (``U`` normalised like everywhere else;
a thread nobody has started is ``404``: there is nothing to follow yet, and answering every
made-up uri with a feed would only invite crawlers). Entries are built from
:func:`server.discussion.shapes.public_comment`, so a feed shows exactly what a page shows: never an
e-mail or client address, never a held, spam or deleted comment.

Feed readers poll, so every answer carries an ``ETag`` (a hash of the body) and a
``Last-Modified`` (the newest change readers could see, removals included), and a matching
``If-None-Match`` or ``If-Modified-Since`` gets ``304`` with no body.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db.feeds import FeedEntry, FeedStore
from server.discussion.shapes import iso, public_comment
from server.errors import NotFound
from server.http.params import required_uri
from server.settings import Settings
from server.state import state_of

SITE_ENTRIES = 50
THREAD_ENTRIES = 100
MEDIA_TYPE = "application/atom+xml"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def _host(settings: Settings) -> str:
    return urlsplit(settings.public_url).hostname or "localhost"


def entry_id(settings: Settings, entry: FeedEntry) -> str:
    """A ``tag:`` URI (RFC 4151) that never changes for a comment, whatever is edited.

    The date is the comment's own, the day the site certainly held its host name.
    """
    comment = entry.comment
    return f"tag:{_host(settings)},{comment.created:%Y-%m-%d}:comment-{comment.id}"


def comment_link(settings: Settings, uri: str, comment_id: int) -> str:
    """Where a comment is read: its anchor on the kibitz post, or on the embedding page.

    A thread's uri is a path. kibitz's own posts live at the public URL; a thread of another
    site lives at that site's origin, which kibitz knows only when one origin is allowed to
    embed; otherwise the public URL is the best address it has.
    """
    origin = settings.public_url
    if not uri.startswith("/posts/") and len(settings.allowed_origins) == 1:
        origin = settings.allowed_origins[0]
    return f"{origin}{quote(uri, safe='/%:@!$&()*+,;=-._~')}#comment-{comment_id}"


def _entries(settings: Settings, entries: list[FeedEntry]) -> list[dict[str, str]]:
    shaped = []
    for entry in entries:
        public = public_comment(entry.comment)  # the one gate between a comment and readers
        shaped.append(
            {
                "id": entry_id(settings, entry),
                "author": public["author"],
                "thread_title": entry.thread_title or entry.uri,
                "published": public["created"],
                "updated": public["edited"] or public["created"],
                "link": comment_link(settings, entry.uri, public["id"]),
                "html": public["html"],
            }
        )
    return shaped


def _not_modified(request: Request, etag: str, changed: datetime) -> bool:
    """RFC 9110 §13.1: If-None-Match decides when present; If-Modified-Since otherwise."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or etag in tags
    since = request.headers.get("if-modified-since")
    if since:
        try:
            return changed.replace(microsecond=0) <= parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
    return False


def _respond(request: Request, body: bytes, changed: datetime) -> Response:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(changed.replace(microsecond=0), usegmt=True),
        # Store, but ask every time: a deleted comment must leave the feed at once, and the
        # question costs a 304.
        "Cache-Control": "no-cache",
    }
    if _not_modified(request, etag, changed):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=MEDIA_TYPE, headers=headers)


def _render(request: Request, **context: Any) -> bytes:
    state = state_of(request)
    settings = state.settings
    text: str = state.templates.render(
        "feeds/atom.xml", site_name=_host(settings), language=settings.language, **context
    )
    # XML 1.0 forbids most control characters; one in an imported name must not break the feed.
    return _NOT_XML.sub("", text).encode("utf-8")


async def site_feed(request: Request) -> Response:
    state = state_of(request)
    settings = state.settings
    feed = await FeedStore(state.db).site(SITE_ENTRIES)
    changed = feed.changed or EPOCH
    body = _render(
        request,
        feed_id=f"{settings.public_url}/feeds/comments.atom",
        thread_title=None,
        updated=iso(changed),
        self_url=f"{settings.public_url}/feeds/comments.atom",
        alternate_url=f"{settings.public_url}/",
        entries=_entries(settings, feed.entries),
    )
    return _respond(request, body, changed)


async def thread_feed(request: Request) -> Response:
    state = state_of(request)
    settings = state.settings
    found = await FeedStore(state.db).thread(required_uri(request.query_params), THREAD_ENTRIES)
    if found is None:
        raise NotFound("Nobody has commented on this page yet, so it has no feed.")
    thread, feed = found
    changed = feed.changed or EPOCH
    self_url = f"{settings.public_url}/feeds/thread.atom?uri={quote(thread.uri, safe='/')}"
    page = comment_link(settings, thread.uri, 0).rsplit("#", 1)[0]
    body = _render(
        request,
        feed_id=self_url,
        thread_title=thread.title or thread.uri,
        updated=iso(changed),
        self_url=self_url,
        alternate_url=page,
        entries=_entries(settings, feed.entries),
    )
    return _respond(request, body, changed)


routes = [
    Route("/feeds/comments.atom", site_feed, methods=["GET", "HEAD"]),
    Route("/feeds/thread.atom", thread_feed, methods=["GET", "HEAD"]),
]
