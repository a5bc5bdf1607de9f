"""kibitz's own export (docs/export.md), so a site can move between kibitz installations.

Comments are identified by their export ``key`` (their original source id, or ``kibitz:{id}``
for comments written on kibitz), which becomes the source id here: importing the same export
twice changes nothing, and exporting the result gives the same document. The file is untrusted
input like any other: HTML is sanitised again and websites checked again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from db.imports import CommentIn, PostIn, ThreadIn
from db.models import STATUSES
from server.discussion.markup import clean_article, resanitise
from server.discussion.uris import normalise_uri
from server.discussion.validation import clean_text, normalise_website
from server.portability.export import FORMAT, VERSION
from server.portability.importers.checks import vote_problem
from server.portability.importers.ordering import ParentsFirst
from server.portability.importers.report import ImportRefused, Report

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")  # what `kibitz post add` accepts


def _date(value: Any, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ImportRefused(f"{where}: {value!r} is not an ISO 8601 date") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(value: Any, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ImportRefused(f"{where}: expected text, found {type(value).__name__}")
    return value


def _decision(thread: dict[str, Any]) -> dict[str, Any]:
    """Closed, reopened (False) or undecided (None, also for files from before closing)."""
    closed = thread.get("closed")
    when = thread.get("closed_at")
    return {
        "closed": closed,
        "closed_at": _date(when, "closed_at") if closed is not None and when else None,
    }


def _votes(c: dict[str, Any]) -> dict[str, Any]:
    """Pin, counts and votes; a file without counts counts its votes, one without votes (or
    from before votes) has none."""
    votes = c.get("votes") or {}
    listed = list(votes.values())
    up, down = c.get("up"), c.get("down")
    return {
        "pinned": c.get("pinned", False),
        "up": listed.count(1) if up is None else up,
        "down": listed.count(-1) if down is None else down,
        "votes": tuple(sorted(votes.items())),
    }


class Source:
    fmt = "kibitz"

    def __init__(self, path: str, report: Report) -> None:
        self.path = path
        self.report = report
        self.doc: dict[str, Any] = {}

    def scan(self) -> int:
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
        except OSError as exc:
            raise ImportRefused(f"cannot read it: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ImportRefused("not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise ImportRefused(
                f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ImportRefused(f'not a kibitz export (no "format": "{FORMAT}")')
        if doc.get("version") != VERSION:
            raise ImportRefused(
                f"export version {doc.get('version')!r} is not supported "
                f"(this kibitz reads version {VERSION})"
            )
        if not isinstance(doc.get("posts"), list) or not isinstance(doc.get("threads"), list):
            raise ImportRefused('a kibitz export needs "posts" and "threads" lists')
        total = 0
        for i, thread in enumerate(doc["threads"]):
            where = f"threads[{i}]"
            if not isinstance(thread, dict) or not isinstance(thread.get("comments"), list):
                raise ImportRefused(f'{where}: needs "uri" and a "comments" list')
            _text(thread.get("uri"), f"{where}.uri")
            if thread.get("closed") is not None and not isinstance(thread["closed"], bool):
                raise ImportRefused(f"{where}.closed: expected true, false or null")
            if thread.get("closed_at") is not None:
                _date(thread["closed_at"], f"{where}.closed_at")
            for j, c in enumerate(thread["comments"]):
                self._check_comment(c, f"{where}.comments[{j}]")
            total += len(thread["comments"])
        for i, post in enumerate(doc["posts"]):
            if not isinstance(post, dict):
                raise ImportRefused(f"posts[{i}]: expected an object")
            for name in ("slug", "title", "author", "body_html"):
                _text(post.get(name), f"posts[{i}].{name}")
            if not SLUG.match(post["slug"]):
                raise ImportRefused(
                    f"posts[{i}].slug: {post['slug']!r} is not a slug "
                    "(lowercase letters, digits and hyphens)"
                )
            _date(post.get("published"), f"posts[{i}].published")
        self.doc = doc
        return total

    def _check_comment(self, c: Any, where: str) -> None:
        if not isinstance(c, dict):
            raise ImportRefused(f"{where}: expected an object")
        for name in ("key", "author", "email", "text", "html", "status"):
            _text(c.get(name), f"{where}.{name}")
        for name in ("parent", "website", "address", "reason", "staff"):
            _text(c.get(name), f"{where}.{name}", optional=True)
        if c["status"] not in STATUSES:
            raise ImportRefused(
                f"{where}.status: {c['status']!r} is not one of " + ", ".join(STATUSES)
            )
        _date(c.get("created"), f"{where}.created")
        if c.get("edited") is not None:
            _date(c["edited"], f"{where}.edited")
        if not isinstance(c.get("votes") or {}, dict):
            raise ImportRefused(f"{where}.votes: expected an object of voter: 1 or -1")
        problem = vote_problem(
            c.get("pinned", False), c.get("up"), c.get("down"), (c.get("votes") or {}).items()
        )
        if problem is not None:
            raise ImportRefused(f"{where}.{problem[0]}: {problem[1]}")

    def records(self) -> Iterator[ThreadIn | CommentIn]:
        threads = {normalise_uri(t["uri"]): t for t in self.doc["threads"]}
        for post in self.doc["posts"]:
            uri = f"/posts/{post['slug']}"
            thread = threads.get(uri, {})
            yield ThreadIn(
                f"kibitz:{uri}",
                uri,
                thread.get("title", post["title"]),
                _date(thread["created"], uri) if thread.get("created") else None,
                tuple(normalise_uri(a) for a in thread.get("aliases", [])),
                post=PostIn(
                    slug=post["slug"],
                    title=post["title"],
                    author=post["author"],
                    body_html=clean_article(post["body_html"]),
                    published=_date(post["published"], uri),
                    categories=tuple(str(c) for c in post.get("categories") or ()),
                    language=post.get("language"),
                    source=post.get("source"),
                ),
                **_decision(thread),
            )
        posted = {f"/posts/{p['slug']}" for p in self.doc["posts"]}
        for uri, thread in threads.items():
            if uri not in posted:
                yield ThreadIn(
                    f"kibitz:{uri}",
                    uri,
                    thread.get("title"),
                    _date(thread["created"], uri) if thread.get("created") else None,
                    tuple(normalise_uri(a) for a in thread.get("aliases", [])),
                    **_decision(thread),
                )
            order = ParentsFirst(self.report)
            for c in thread["comments"]:
                yield from order.push(
                    CommentIn(
                        thread_key=f"kibitz:{uri}",
                        source=c["key"],
                        parent_source=c.get("parent"),
                        author=clean_text(c["author"]),
                        email=clean_text(c["email"]),
                        website=normalise_website(c["website"]) if c.get("website") else None,
                        text=clean_text(c["text"]),
                        html=resanitise(c["html"]),
                        status=c["status"],
                        created=_date(c["created"], c["key"]),
                        edited=_date(c["edited"], c["key"]) if c.get("edited") else None,
                        address=c.get("address"),
                        reason=c.get("reason"),
                        staff_name=c.get("staff"),
                        sso_sub=c["sub"] if isinstance(c.get("sub"), str) else None,
                        **_votes(c),
                    )
                )
            yield from order.finish()
