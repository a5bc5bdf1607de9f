"""WordPress WXR exports (1.0 to 1.2, ``http`` or ``https`` namespace).

Published posts and pages become kibitz posts at ``/posts/{slug}`` with their old permalink
path as a thread alias. Items that are not public posts (password-protected, private, drafts,
attachments) get no post page; their comments, if any, are kept on a thread at the old path.
Comments keep status, date (GMT), reply structure and private fields; pingbacks and
trackbacks are skipped unless asked for, and every skip is counted.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree.ElementTree import Element

from db.imports import CommentIn, PostIn, ThreadIn
from db.models import Status
from server.discussion.markup import clean_article, render_comment
from server.discussion.uris import normalise_uri
from server.discussion.validation import MAX_AUTHOR, clean_text, normalise_website
from server.portability.importers.ordering import ParentsFirst
from server.portability.importers.report import ImportRefused, Report
from server.portability.importers.xmlstream import ROOT, elements, local, namespace

website = lru_cache(maxsize=4096)(normalise_website)  # commenters come back: same URLs

_PREFIXES = (
    (re.compile(r"^https?://wordpress\.org/export/1\.\d+/?$"), "wp:"),
    (re.compile(r"^https?://purl\.org/rss/1\.0/modules/content/?$"), "content:"),
    (re.compile(r"^https?://purl\.org/dc/elements/1\.1/?$"), "dc:"),
    (re.compile(r"^https?://wordpress\.org/export/1\.\d+/excerpt/?$"), "excerpt:"),
)
STATUSES = {
    "1": Status.APPROVED,
    "approve": Status.APPROVED,
    "spam": Status.SPAM,
    "trash": Status.DELETED,
    "post-trashed": Status.DELETED,
}
NOT_DATES = ("", "0000-00-00 00:00:00")
_BLOCK = re.compile(
    r"^<(p|div|h[1-6]|ul|ol|dl|li|blockquote|pre|table|figure|hr|!--|address)\b", re.IGNORECASE
)


@lru_cache(maxsize=256)
def _name(tag: str) -> str:
    ns = namespace(tag)
    for pattern, prefix in _PREFIXES:
        if pattern.match(ns):
            return prefix + local(tag)
    return local(tag) if not ns else f"{{{ns}}}{local(tag)}"


def _fields(elem: Element) -> dict[str, str]:
    found: dict[str, str] = {}
    for child in elem:
        found.setdefault(_name(child.tag), child.text or "")
    return found


def _get(fields: dict[str, str], name: str) -> str:
    return fields.get(name, "").strip()


def _wp_date(value: str) -> datetime | None:
    if value in NOT_DATES or value.startswith("0000"):
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        return None


def slugify(value: str) -> str:
    """A slug kibitz serves: lowercase ASCII letters, digits and hyphens.

    Accents are dropped (``café`` → ``cafe``); a name in another script gives "" so that the
    caller falls back to the post id rather than to a mangled fragment such as ``-2``.
    """
    value = unicodedata.normalize("NFKD", unquote(value))
    if any(unicodedata.category(ch).startswith("L") and not ch.isascii() for ch in value):
        return ""
    value = value.encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")[:100].strip("-")


def autop(body: str) -> str:
    """WordPress stores paragraphs as blank lines and adds ``<p>`` only when it shows a post."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", body.replace("\r\n", "\n")) if b.strip()]
    return "\n".join(
        b if _BLOCK.match(b) else "<p>" + b.replace("\n", "<br>\n") + "</p>" for b in blocks
    )


class _Item:
    """What is known of the ``<item>`` being read: its fields up to its first comment."""

    def __init__(self, elem: Element) -> None:
        self.elem = elem
        self.fields: dict[str, str] = {}
        self.categories: list[str] = []
        self.started = False
        self.key = ""
        self.published: datetime | None = None
        self.skip_why: str | None = None
        self.order: ParentsFirst


class Source:
    fmt = "wordpress"

    def __init__(self, path: str, report: Report, *, pingbacks: bool = False) -> None:
        self.path = path
        self.report = report
        self.pingbacks = pingbacks
        self.total = 0

    def scan(self) -> int:
        """Read the whole file once; refuse it before anything is written."""
        wp_seen, root = False, ""
        for depth, elem, parent in elements(self.path, 3):
            if depth == ROOT:
                root = local(elem.tag)  # judged after the parse: a syntax error says more
            elif parent is not None and local(parent.tag) == "item":
                name = _name(elem.tag)
                wp_seen = wp_seen or name.startswith("wp:")
                self.total += name == "wp:comment"
        if root != "rss":
            raise ImportRefused(f"not a WordPress export: the root element is <{root}>, not <rss>")
        if not wp_seen:
            raise ImportRefused("not a WordPress export: no wp: elements (WXR) in any <item>")
        return self.total

    def records(self) -> Iterator[ThreadIn | CommentIn]:
        """Stream items a field and a comment at a time: a post with 100k comments is never
        held whole. WXR lists an item's comments after its fields, so the post is decided at
        its first comment (or at its end when it has none)."""
        item: _Item | None = None
        for depth, elem, parent in elements(self.path, 2, 3):
            if depth == 3:
                if parent is None or local(parent.tag) != "item":
                    continue
                if item is None or item.elem is not parent:
                    item = _Item(parent)
                name = _name(elem.tag)
                if name == "wp:comment":
                    if not item.started:
                        yield from self._start(item, has_comments=True)
                    if item.skip_why is not None:
                        self.report.skip(item.skip_why)
                    else:
                        yield from self._comment(elem, item)
                elif not item.started:
                    item.fields.setdefault(name, elem.text or "")
                    if name == "category" and elem.get("domain") == "category":
                        item.categories.append((elem.text or "").strip())
            elif depth == 2 and local(elem.tag) == "item":
                if item is None or item.elem is not elem:
                    item = _Item(elem)
                if not item.started:
                    yield from self._start(item, has_comments=False)
                yield from item.order.finish()
                item = None

    def _start(self, item: _Item, *, has_comments: bool) -> Iterator[ThreadIn]:
        """Decide what the item becomes: a post, a thread at its old address, or nothing."""
        item.started = True
        item.order = ParentsFirst(self.report)
        f = item.fields
        link = _get(f, "link")
        parts = urlsplit(link)
        query = parse_qs(parts.query)
        post_id = _get(f, "wp:post_id") or next(
            iter(query.get("p", []) + query.get("page_id", [])), ""
        )
        old_path = normalise_uri(link) if link else None
        if old_path == "/":
            old_path = None  # the link names only the site (``/?p=4``): no alias to keep
        segments = [s for s in parts.path.split("/") if s]
        slug = (
            slugify(_get(f, "wp:post_name"))
            or (slugify(segments[-1]) if segments else "")
            or slugify(post_id)
        )
        post_type = _get(f, "wp:post_type") or "post"
        status = _get(f, "wp:status") or "publish"
        protected = bool(_get(f, "wp:post_password"))
        item.published = (
            _wp_date(_get(f, "wp:post_date_gmt"))
            or _wp_date(_get(f, "wp:post_date"))
            or self._rfc822(_get(f, "pubDate"))
        )
        item.key = f"wordpress:{post_id or link}"
        is_post = (
            post_type in ("post", "page") and status == "publish" and not protected and bool(slug)
        )
        title = (html.unescape(clean_text(_get(f, "title"))) or slug)[:300]
        if is_post:
            post = PostIn(
                slug=slug,
                title=title,
                author=clean_text(_get(f, "dc:creator")) or "admin",
                body_html=clean_article(autop(clean_text(_get(f, "content:encoded")))),
                published=item.published or datetime.now(UTC),
                categories=tuple(dict.fromkeys(c for c in item.categories if c)),
                source=f"wordpress:post:{post_id}" if post_id else None,
            )
            yield ThreadIn(
                item.key,
                f"/posts/{slug}",
                title,
                item.published,
                (old_path,) if old_path else (),
                post,
            )
            return
        why = "password-protected" if protected else f"{post_type} ({status})"
        self.report.not_posts[why] += 1
        if not has_comments:
            return
        if not post_id and not link:
            item.skip_why = "item without id or link"
        elif old_path is None:
            item.skip_why = "item without an address of its own"
        else:
            self.report.notes.append(
                f"{old_path}: {why}, not a post; its comments are kept on a thread at that address"
            )
            yield ThreadIn(item.key, old_path, title, item.published)

    def _comment(self, elem: Element, item: _Item) -> list[CommentIn]:
        f = _fields(elem)
        key, post_date, order = item.key, item.published, item.order
        comment_id = _get(f, "wp:comment_id")
        if not comment_id:
            self.report.skip("comment without comment_id")
            return []
        source = f"{key}:{comment_id}"
        kind = _get(f, "wp:comment_type") or "comment"
        if (kind in ("pingback", "trackback") and not self.pingbacks) or kind not in (
            "comment",
            "pingback",
            "trackback",
        ):
            self.report.skip(kind)
            return order.drop(source, kind)
        created = _wp_date(_get(f, "wp:comment_date_gmt"))
        if created is None:
            created = _wp_date(_get(f, "wp:comment_date"))
            if created is not None:
                self.report.flag("no GMT date, local time taken as UTC")
            else:
                created = post_date or datetime.now(UTC)
                self.report.flag("no date, the post's date used")
        parent = _get(f, "wp:comment_parent")
        content = clean_text(_get(f, "wp:comment_content"))
        return order.push(
            CommentIn(
                thread_key=key,
                source=source,
                parent_source=f"{key}:{parent}" if parent not in ("", "0") else None,
                author=html.unescape(clean_text(_get(f, "wp:comment_author"))).strip()[:MAX_AUTHOR]
                or "Anonymous",
                email=clean_text(_get(f, "wp:comment_author_email")),
                website=website(clean_text(_get(f, "wp:comment_author_url"))),
                text=content,
                html=render_comment(content),
                status=STATUSES.get(_get(f, "wp:comment_approved"), Status.PENDING),
                created=created,
                address=_get(f, "wp:comment_author_IP") or None,
            )
        )

    def _rfc822(self, value: str) -> datetime | None:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
