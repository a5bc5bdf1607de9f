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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from db.imports import CommentIn, PostIn, ThreadIn
from db.models import STATUSES
from server.auth.sso import MAX_SUB
from server.discussion import values
from server.discussion.errors import InvalidInput
from server.discussion.values import MAX_AUTHOR, MAX_TEXT, MAX_TITLE
from server.portability.importers.report import ImportRefused, Report

# Rendered HTML may be longer than the text it came from (markup, entities): bounded anyway.
MAX_HTML = 8 * MAX_TEXT
MAX_BODY = 1_000_000  # a post's article
MAX_SHORT = 200  # source ids, reasons, staff names, addresses, slugs
# Voters as the votes table holds them (server/discussion/votes.py): "anon:" and the random
# part of a signed anonymous id, or "sso:" and the host site's user id.
VOTER_KINDS = ("anon:", "sso:")
MAX_VOTER = len("anon:") + MAX_SUB
MAX_COUNT = 2**31 - 1  # vote counts are INTEGER columns
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
    problem = vote_problem(comment.pinned, comment.up, comment.down, comment.votes)
    if problem is not None:
        raise ImportRefused(f"{where}: {problem[0]}: {problem[1]}")
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


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


def vote_problem(
    pinned: Any, up: Any, down: Any, votes: Iterable[tuple[Any, Any]]
) -> tuple[str, str] | None:
    """What is wrong with a comment's pin, counts and votes, as ``(field, why)``, or None.

    ``up``/``down`` None means "the listed votes"; a count may exceed them (votes left out
    of the file still count) but never fall short of them. Voters are kept exactly as given
    (they must match the id a reader's browser sends later), so text the database cannot
    hold is refused, never cleaned.
    """
    if not isinstance(pinned, bool):
        return "pinned", f"expected true or false, found {_kind(pinned)}"
    tally = {1: 0, -1: 0}
    seen: set[str] = set()
    for voter, value in votes:
        if not isinstance(voter, str):
            return "votes", f"a voter is text, found {_kind(voter)}"
        shown = repr(voter[:40])
        if (
            not voter.startswith(VOTER_KINDS)
            or voter.split(":", 1)[1] == ""
            or len(voter) > MAX_VOTER
            or "\x00" in voter
            or values.has_lone_surrogate(voter)
        ):
            return "votes", f"voter {shown} is not anon:… or sso:… (at most {MAX_VOTER} characters)"
        if voter in seen:
            return "votes", f"voter {shown} is listed twice"
        seen.add(voter)
        if isinstance(value, bool) or not isinstance(value, int) or value not in (1, -1):
            return "votes", f"voter {shown}: a vote is 1 or -1, found {value!r}"[:300]
        tally[value] += 1
    for name, count, listed in (("up", up, tally[1]), ("down", down, tally[-1])):
        if count is None:
            continue
        if not _count(count):
            return name, f"expected a whole number from 0 to {MAX_COUNT}, found {count!r}"[:300]
        if count < listed:
            return name, f"{count} is fewer than the {listed} {name} votes listed"
    return None


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
    if thread.closed is not None and not isinstance(thread.closed, bool):
        raise ImportRefused(f"{where}: closed: expected true, false or null")
    return replace(
        thread,
        uri=_field(where, "uri", lambda: values.thread_uri(thread.uri)),
        closed_at=None if thread.closed_at is None else _date(where, "closed_at", thread.closed_at),
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
