"""Turning what people type into safe HTML, once, when it is written.

Commenters get a small allowlist (the classic WordPress one); post bodies, which come from
the site's authors or from imports of third-party HTML, get a wider article allowlist. nh3's
defaults are looser than either: it keeps ``lang``/``title`` on every tag unless the generic
attribute set is emptied, passes relative and protocol-relative URLs, and never checks the
scheme of ``cite``. Each of those is closed explicitly below.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import nh3

SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow ugc noopener"

# What a commenter may type: the contract's allowlist, nothing more.
COMMENT_TAGS = frozenset(
    {
        "a",
        "abbr",
        "acronym",
        "b",
        "blockquote",
        "cite",
        "code",
        "del",
        "em",
        "i",
        "q",
        "strike",
        "strong",
    }
)
COMMENT_ATTRIBUTES = {
    "*": set(),
    "a": {"href", "title"},
    "abbr": {"title"},
    "acronym": {"title"},
    "blockquote": {"cite"},
    "del": {"datetime"},
    "q": {"cite"},
}
# What kibitz itself adds around the sanitised text.
LAYOUT_TAGS = frozenset({"p", "br"})

ARTICLE_TAGS = frozenset(
    {
        "a",
        "abbr",
        "acronym",
        "address",
        "b",
        "blockquote",
        "br",
        "caption",
        "cite",
        "code",
        "col",
        "colgroup",
        "dd",
        "del",
        "details",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "figcaption",
        "figure",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "ins",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "summary",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "time",
        "tr",
        "u",
        "ul",
        "var",
    }
)
ARTICLE_ATTRIBUTES = {
    "*": set(),
    "a": {"href", "title"},
    "abbr": {"title"},
    "acronym": {"title"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "del": {"datetime", "cite"},
    "ins": {"datetime", "cite"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "col": {"span"},
    "ol": {"start", "reversed"},
    "time": {"datetime"},
}

_URL_ATTRIBUTES = frozenset({"href", "cite", "src"})
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


def _absolute_urls_only(tag: str, attribute: str, value: str) -> str | None:
    """nh3 checks ``href`` schemes but not ``cite``; this checks every URL attribute."""
    if attribute in _URL_ATTRIBUTES:
        match = _SCHEME.match(value.strip())
        if not match or match.group(1).lower() not in SCHEMES:
            return None
    return value


def _article_urls(tag: str, attribute: str, value: str) -> str | None:
    """Articles may link relatively (their own site), but never to another scheme."""
    if attribute in _URL_ATTRIBUTES:
        stripped = value.strip()
        match = _SCHEME.match(stripped)
        if match and match.group(1).lower() not in SCHEMES:
            return None
        if stripped.startswith("//"):
            return None
    return value


_comment_cleaner = nh3.Cleaner(
    tags=set(COMMENT_TAGS),
    attributes=COMMENT_ATTRIBUTES,
    generic_attribute_prefixes=set(),
    url_schemes=set(SCHEMES),
    url_relative="deny",
    link_rel=LINK_REL,
    attribute_filter=_absolute_urls_only,
    strip_comments=True,
)
_rendered_cleaner = nh3.Cleaner(
    tags=set(COMMENT_TAGS | LAYOUT_TAGS),
    attributes=COMMENT_ATTRIBUTES,
    generic_attribute_prefixes=set(),
    url_schemes=set(SCHEMES),
    url_relative="deny",
    link_rel=LINK_REL,
    attribute_filter=_absolute_urls_only,
    strip_comments=True,
)
_article_cleaner = nh3.Cleaner(
    tags=set(ARTICLE_TAGS),
    attributes=ARTICLE_ATTRIBUTES,
    generic_attribute_prefixes=set(),
    url_schemes=set(SCHEMES),
    link_rel="noopener",
    attribute_filter=_article_urls,
    strip_comments=True,
)

# A plain URL in text; trailing punctuation belongs to the sentence, not the link.
_PLAIN_URL = re.compile(r"\bhttps?://[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


def _linkify_text(text: str) -> str:
    out: list[str] = []
    last = 0
    for match in _PLAIN_URL.finditer(text):
        url = match.group(0)
        while url and url[-1] in _TRAILING:
            if url[-1] == ")" and url.count("(") >= url.count(")"):
                break
            url = url[:-1]
        if len(url) <= len("https://"):
            continue
        start, end = match.start(), match.start() + len(url)
        out.append(html.escape(text[last:start], quote=False))
        href = html.escape(url, quote=True)
        out.append(f'<a href="{href}">{html.escape(url, quote=False)}</a>')
        last = end
    out.append(html.escape(text[last:], quote=False))
    return "".join(out)


class _Linkifier(HTMLParser):
    """Re-emits sanitised HTML, turning plain URLs in text (outside links) into links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.inside_link = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.inside_link += 1
        rendered = "".join(f' {k}="{html.escape(v or "", quote=True)}"' for k, v in attrs)
        self.out.append(f"<{tag}{rendered}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self.inside_link = max(0, self.inside_link - 1)
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.out.append(html.escape(data, quote=False) if self.inside_link else _linkify_text(data))


def _paragraphs(fragment: str) -> str:
    blocks = [b.strip("\n") for b in re.split(r"\n[ \t]*\n+", fragment.strip())]
    return "".join(f"<p>{b.replace(chr(10), '<br>')}</p>" for b in blocks if b.strip())


def render_comment(text: str) -> str:
    """The HTML readers see for what a commenter typed.

    Sanitise first, then add links and paragraphs, then sanitise once more with ``p`` and
    ``br`` allowed: that last pass repairs nesting split by a paragraph break, so the result
    is a fixed point (sanitising it again changes nothing).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    cleaned = _comment_cleaner.clean(text)
    linkifier = _Linkifier()
    linkifier.feed(cleaned)
    linkifier.close()
    rendered = _rendered_cleaner.clean(_paragraphs("".join(linkifier.out)))
    # A block (blockquote) inside a paragraph splits it, leaving empty p elements behind.
    return rendered.replace("<p></p>", "")


def resanitise(rendered: str) -> str:
    """Sanitise already-rendered comment HTML (used by tests to prove it is a fixed point)."""
    return _rendered_cleaner.clean(rendered)


def clean_article(body: str) -> str:
    """Sanitise a post body: headings, lists, images, tables and links; never scripts."""
    return _article_cleaner.clean(body)


def count_links(rendered: str) -> int:
    return rendered.count("<a ")
