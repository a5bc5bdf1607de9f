"""Disqus XML exports: ``<thread>`` elements, then ``<post>`` elements that point at them.

A thread is keyed by its ``<link>`` normalised to a path (origin, query and fragment dropped,
so an export from an old domain lands on the same paths); its Disqus ``<id>`` identifier is
kept as an alias. Statuses: ``isSpam`` → spam, ``isDeleted`` or a deleted thread → deleted,
otherwise approved (a missing flag counts as false). Posts of an unknown thread, or of a
thread without a link, have no page to live on: they are skipped and counted.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree.ElementTree import Element

from db.imports import CommentIn, ThreadIn
from db.models import Status
from server.discussion.markup import render_comment
from server.discussion.uris import normalise_uri
from server.discussion.validation import MAX_AUTHOR, clean_text, normalise_website
from server.portability.importers.ordering import ParentsFirst
from server.portability.importers.report import ImportRefused, Report
from server.portability.importers.xmlstream import ROOT, elements, local, text


@dataclass(frozen=True)
class _Thread:
    uri: str | None
    alias: str | None
    title: str | None
    created: datetime | None
    deleted: bool


def _dsq_id(elem: Element | None) -> str:
    if elem is None:
        return ""
    for name, value in elem.attrib.items():
        if local(name) == "id":
            return value.strip()
    return ""


def _child(elem: Element, name: str) -> Element | None:
    for child in elem:
        if local(child.tag) == name:
            return child
    return None


def _get(elem: Element, name: str) -> str:
    return (text(_child(elem, name)) or "").strip()


def _flag(elem: Element, name: str) -> bool:
    return _get(elem, name).lower() == "true"


def parse_date(value: str) -> datetime | None:
    """ISO 8601 as Disqus writes it, with or without fractional seconds."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def message_text(message: str) -> str:
    """What the commenter typed, roughly: Disqus stores HTML paragraphs, kibitz blank lines."""
    message = re.sub(r"(?i)<br\s*/?>", "\n", message)
    message = re.sub(r"(?i)</p>\s*<p(\s[^>]*)?>", "\n\n", message)
    return re.sub(r"(?i)</?p(\s[^>]*)?>", "", message).strip()


def _post_key(post: Element) -> str:
    return _dsq_id(post) or _get(post, "id")


class Source:
    fmt = "disqus"

    def __init__(self, path: str, report: Report) -> None:
        self.path = path
        self.report = report
        self.threads: dict[str, _Thread] = {}
        self.posts: set[str] = set()
        self.total = 0

    def scan(self) -> int:
        root = ""
        for depth, elem, _ in elements(self.path, 1):
            if depth == ROOT:
                root = local(elem.tag)  # judged after the parse: a syntax error says more
            elif local(elem.tag) == "thread":
                link = _get(elem, "link")
                ident = _get(elem, "id")
                uri = normalise_uri(link) if link else None
                alias = normalise_uri(ident) if ident else None
                self.threads[_dsq_id(elem)] = _Thread(
                    uri,
                    alias if alias != uri else None,
                    html.unescape(_get(elem, "title")) or None,
                    parse_date(_get(elem, "createdAt")),
                    _flag(elem, "isDeleted"),
                )
            elif local(elem.tag) == "post":
                self.total += 1
                key = _post_key(elem)
                if key:
                    self.posts.add(key)
        if root != "disqus":
            raise ImportRefused(f"not a Disqus export: the root element is <{root}>, not <disqus>")
        return self.total

    def records(self) -> Iterator[ThreadIn | CommentIn]:
        order = ParentsFirst(self.report, known={f"disqus:{k}" for k in self.posts})
        emitted: set[str] = set()
        for depth, elem, _ in elements(self.path, 1):
            if depth == ROOT or local(elem.tag) != "post":
                continue
            key = _post_key(elem)
            if not key:
                self.report.skip("post without an id")
                continue
            source = f"disqus:{key}"
            ref = _dsq_id(_child(elem, "thread"))
            thread = self.threads.get(ref)
            if thread is None or thread.uri is None:
                why = "orphan: unknown thread" if thread is None else "orphan: thread without link"
                self.report.skip(why)
                yield from order.drop(source, why)
                continue
            if ref not in emitted:
                emitted.add(ref)
                yield ThreadIn(
                    f"disqus:thread:{ref}",
                    thread.uri,
                    thread.title,
                    thread.created,
                    (thread.alias,) if thread.alias else (),
                )
            created = parse_date(_get(elem, "createdAt"))
            if created is None:
                created = thread.created or datetime.now(UTC)
                self.report.flag("no readable createdAt, the thread's date used")
            author = _child(elem, "author")
            name = _get(author, "name") or _get(author, "username") if author is not None else ""
            typed = message_text(clean_text(_get(elem, "message")))
            status = (
                Status.SPAM
                if _flag(elem, "isSpam")
                else Status.DELETED
                if _flag(elem, "isDeleted") or thread.deleted
                else Status.APPROVED
            )
            parent = _dsq_id(_child(elem, "parent"))
            yield from order.push(
                CommentIn(
                    thread_key=f"disqus:thread:{ref}",
                    source=source,
                    parent_source=f"disqus:{parent}" if parent else None,
                    author=html.unescape(clean_text(name)).strip()[:MAX_AUTHOR] or "Anonymous",
                    email=clean_text(_get(author, "email")) if author is not None else "",
                    website=normalise_website(_get(author, "link")) if author is not None else None,
                    text=typed,
                    html=render_comment(typed),
                    status=status,
                    created=created,
                    address=_get(elem, "ipAddress") or None,
                )
            )
        yield from order.finish()
