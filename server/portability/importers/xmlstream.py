"""Reading untrusted XML exports safely and in bounded memory.

``defusedxml`` refuses entity declarations (no billion laughs) and external references (no
file or network reads); expat never fetches external DTDs. Elements at the depth a format
cares about are handed out complete and then detached from their parent, so memory stays that
of one element (one comment, one post's fields) however large the file or a single post is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, EntitiesForbidden
from defusedxml.ElementTree import iterparse

from server.portability.importers.report import ImportRefused


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


ROOT = -1


def elements(path: str, *depths: int) -> Iterator[tuple[int, Element, Element | None]]:
    """Yield ``(ROOT, root, None)`` once at the root's start tag, then ``(depth, element,
    parent)`` for every complete element at one of ``depths`` below the root (1 = its
    children), detaching and clearing each once the caller is done with it: read what you
    need while you hold it.

    Raises :class:`ImportRefused` with the line and column when the file is not well-formed.
    """
    stack: list[Element] = []
    wanted = set(depths)
    try:
        for event, elem in iterparse(
            path,
            events=("start", "end"),
            forbid_dtd=False,
            forbid_entities=True,
            forbid_external=True,
        ):
            if event == "start":
                if not stack:
                    yield ROOT, elem, None
                stack.append(elem)
                continue
            stack.pop()
            if len(stack) in wanted:
                parent = stack[-1] if stack else None
                yield len(stack), elem, parent
                if parent is not None:
                    parent.remove(elem)
                elem.clear()
    except ParseError as exc:
        raise ImportRefused(f"not well-formed XML ({_position(exc)})") from None
    except EntitiesForbidden as exc:
        raise ImportRefused(
            f"the file declares the entity {exc.name!r}; entity expansion and "
            "external entities are refused"
        ) from None
    except DefusedXmlException as exc:
        raise ImportRefused(f"the file uses a forbidden XML feature: {exc}") from None
    except OSError as exc:
        raise ImportRefused(f"cannot read it: {exc.strerror or exc}") from None


def _position(exc: ParseError) -> str:
    message = str(exc)
    if re.search(r"line \d+", message):
        return message
    line, column = getattr(exc, "position", (0, 0))
    return f"{message}: line {line}, column {column}"


def text(elem: Element | None) -> str | None:
    """An element's text, or None when the element is absent."""
    if elem is None:
        return None
    return elem.text or ""
