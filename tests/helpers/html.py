"""Checking sanitised HTML the way a browser would read it (html5lib, the HTML5 algorithm).

Used by the sanitiser and XSS-corpus tests: parse, then look at the elements a browser would
build, not at the string, since mutation XSS lives exactly in the difference.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import html5lib

XHTML = "{http://www.w3.org/1999/xhtml}"
# The contract's allowlist, plus p and br that kibitz adds, plus rel that it sets on links.
ALLOWED: dict[str, set[str]] = {
    "a": {"href", "title", "rel"},
    "abbr": {"title"},
    "acronym": {"title"},
    "b": set(),
    "blockquote": {"cite"},
    "cite": set(),
    "code": set(),
    "del": {"datetime"},
    "em": set(),
    "i": set(),
    "q": {"cite"},
    "strike": set(),
    "strong": set(),
    "p": set(),
    "br": set(),
}
SCHEMES = {"http", "https", "mailto"}
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


def url_allowed(value: str) -> bool:
    """Is this attribute value an http, https or mailto URL, as a browser resolves it?

    Browsers drop tabs and newlines anywhere in a URL and C0 controls and spaces around it,
    so ``java\\tscript:`` is ``javascript:``; a relative URL would inherit the page's scheme
    and host, which the contract does not allow for comments either.
    """
    cleaned = re.sub(r"[\t\n\r]", "", value).strip(
        "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b"
        "\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16"
        "\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f "
    )
    match = _SCHEME.match(cleaned)
    return bool(match) and match.group(1).lower() in SCHEMES


def problems(elements: Iterable[Any]) -> list[str]:
    """Everything wrong with these parsed elements under the comment allowlist."""
    found: list[str] = []
    for el in elements:
        tag = el.tag if isinstance(el.tag, str) else repr(el.tag)
        if not tag.startswith(XHTML):
            found.append(f"foreign element {tag}")
            continue
        name = tag[len(XHTML) :]
        if name not in ALLOWED:
            found.append(f"element <{name}>")
            continue
        for attr, value in el.attrib.items():
            if attr not in ALLOWED[name]:
                found.append(f"attribute {attr} on <{name}>")
            elif attr in ("href", "cite") and not url_allowed(value):
                found.append(f"{attr}={value!r} on <{name}>")
        if name == "a" and el.attrib.get("rel") != "nofollow ugc noopener":
            found.append(f"link without rel: {el.attrib!r}")
    return found


def parse_fragment(html: str) -> Any:
    return html5lib.parseFragment(html, container="div", treebuilder="etree")


def check_fragment(html: str) -> None:
    """Fail the test when this comment HTML, parsed as a browser would, breaks the allowlist."""
    fragment = parse_fragment(html)
    found = problems(el for el in fragment.iter() if el is not fragment)
    assert not found, f"{found} in {html!r}"


def shape(element: Any) -> list[Any]:
    """A comparable outline of an element's content: tags, sorted attributes, text."""
    out: list[Any] = [element.text or ""]
    for child in element:
        out.append((child.tag, sorted(child.attrib.items()), shape(child)))
        out.append(child.tail or "")
    return out
