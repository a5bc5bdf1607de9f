"""Every imported record through the same value boundary as the API, whatever its format.

The sources (WXR, Disqus, kibitz JSON, Isso) read their files; every record they yield then
passes here before it is written: types and lengths are checked like the API's
(server/discussion/values.py), so a 21 MB comment, a number where text belongs or a lone
surrogate refuses the import with one line naming the record (`kibitz import` exits 2),
instead of being served on every read or failing half-way with a traceback. Anything else a
crafted file makes a source raise is turned into the same one-line refusal.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from db.imports import CommentIn, PostIn, ThreadIn
from db.models import STATUSES
from server.discussion import values
from server.discussion.errors import InvalidInput
from server.discussion.values import MAX_AUTHOR, MAX_TEXT, MAX_TITLE
from server.portability.importers.report import ImportRefused, Report

# Rendered HTML may be longer than the text it came from (markup, entities): bounded anyway.
MAX_HTML = 8 * MAX_TEXT
MAX_BODY = 1_000_000  # a post's article
MAX_SHORT = 200  # source ids, reasons, staff names, addresses, slugs
# What a crafted file can make a parser raise; each becomes one line naming the record.
MALFORMED = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    UnicodeError,
    RecursionError,
    InvalidInput,
    sqlite3.Error,
)
T = TypeVar("T")


def _field(where: str, name: str, check: Callable[[], T]) -> T:
    try:
        return check()
    except InvalidInput as exc:
        message = "; ".join(exc.fields.values()) or str(exc)
        raise ImportRefused(f"{where}: {name}: {message}") from None


def _text(where: str, name: str, value: Any, limit: int, *, one_line: bool = False) -> str:
    return _field(
        where,
        name,
        lambda: values.clean_text(value, name, max_length=limit, single_line=one_line),
    )


def _optional(where: str, name: str, value: Any, limit: int) -> str | None:
    if value is None:
        return None
    return _text(where, name, value, limit, one_line=True) or None


def _date(where: str, name: str, value: Any) -> datetime:
    return _field(where, name, lambda: values.parse_date(value, name))


def check_comment(comment: CommentIn, report: Report) -> CommentIn:
    where = f"comment {str(comment.source)[:80]!r}"
    email = _text(where, "email", comment.email, values.MAX_EMAIL, one_line=True)
    if email:
        try:
            email = values.email(email)
        except InvalidInput:
            report.flag("invalid e-mail address dropped")
            email = ""
    website = _optional(where, "website", comment.website, values.MAX_WEBSITE)
    if website is not None and (website := values.web_address(website)) is None:
        report.flag("invalid website dropped")
    if comment.status not in STATUSES:
        raise ImportRefused(f"{where}: status: {comment.status!r} is not one of {STATUSES}")
    return replace(
        comment,
        source=_text(where, "source", comment.source, MAX_SHORT, one_line=True),
        parent_source=_optional(where, "parent", comment.parent_source, MAX_SHORT),
        author=_text(where, "author", comment.author, MAX_AUTHOR, one_line=True),
        email=email,
        website=website,
        text=_text(where, "text", comment.text, MAX_TEXT),
        html=_field(where, "html", lambda: _html(comment.html)),
        created=_date(where, "created", comment.created),
        edited=None if comment.edited is None else _date(where, "edited", comment.edited),
        address=_optional(where, "address", comment.address, MAX_SHORT),
        reason=_optional(where, "reason", comment.reason, MAX_SHORT),
        staff_name=_optional(where, "staff", comment.staff_name, MAX_AUTHOR),
    )


def _html(value: Any) -> str:
    if not isinstance(value, str) or values.has_lone_surrogate(value):
        raise InvalidInput(fields={"html": "This must be valid text."})
    if len(value) > MAX_HTML:
        raise InvalidInput(fields={"html": "This is too long."})
    return value.replace("\x00", "")


def check_thread(thread: ThreadIn) -> ThreadIn:
    where = f"thread {str(thread.key)[:80]!r}"
    title = thread.title
    if title is not None:
        title = _text(where, "title", title, 4 * MAX_TITLE, one_line=True)[:MAX_TITLE] or None
    return replace(
        thread,
        uri=_field(where, "uri", lambda: values.thread_uri(thread.uri)),
        title=title,
        created=None if thread.created is None else _date(where, "created", thread.created),
        aliases=tuple(
            _field(where, "aliases", partial(values.thread_uri, a)) for a in thread.aliases
        ),
        post=None if thread.post is None else check_post(thread.post, where),
    )


def check_post(post: PostIn, where: str) -> PostIn:
    where = f"{where}, post {str(post.slug)[:80]!r}"
    return replace(
        post,
        slug=_text(where, "slug", post.slug, MAX_SHORT, one_line=True),
        title=_text(where, "title", post.title, 4 * MAX_TITLE, one_line=True)[:MAX_TITLE],
        author=_text(where, "author", post.author, MAX_AUTHOR, one_line=True),
        body_html=_text(where, "body", post.body_html, MAX_BODY),
        published=_date(where, "published", post.published),
        categories=tuple(
            _text(where, "category", c, MAX_SHORT, one_line=True) for c in post.categories
        ),
        language=_optional(where, "language", post.language, 20),
        source=_optional(where, "source", post.source, MAX_SHORT),
    )


def checked(
    records: Iterator[ThreadIn | CommentIn], report: Report
) -> Iterator[ThreadIn | CommentIn]:
    """The source's records, each checked; a crafted file's surprise becomes ImportRefused."""
    last = "the start of the file"
    try:
        for record in records:
            if isinstance(record, ThreadIn):
                record = check_thread(record)
                last = f"thread {record.key!r}"
            elif isinstance(record, CommentIn):
                record = check_comment(record, report)
                last = f"comment {record.source!r}"
            else:
                raise ImportRefused(f"after {last}: an unexpected record")
            yield record
    except MALFORMED as exc:
        raise ImportRefused(_one_line(f"after {last}: malformed input", exc)) from None


def scanned(scan: Callable[[], int]) -> int:
    """The source's scan, with a crafted file's surprise said in one line."""
    try:
        return scan()
    except MALFORMED as exc:
        raise ImportRefused(_one_line("malformed input", exc)) from None


def _one_line(what: str, exc: BaseException) -> str:
    fields = getattr(exc, "fields", None)
    text = "; ".join(f"{k}: {v}" for k, v in fields.items()) if fields else str(exc)
    detail = " ".join(text.split())[:300]
    return f"{what} ({type(exc).__name__}: {detail})"
