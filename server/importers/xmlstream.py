"""Reading untrusted XML exports safely and in bounded memory.

``defusedxml`` refuses entity declarations (no billion laughs) and external references (no
file or network reads); expat never fetches external DTDs. Elements at the depth a format
cares about are handed out complete and then detached from their parent, so memory stays that
of one item however large the file is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, EntitiesForbidden
from defusedxml.ElementTree import iterparse

from server.importers.report import ImportRefused


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def elements(path: str, depth: int) -> Iterator[tuple[bool, Element]]:
    """Yield ``(True, root)`` once at its start tag, then ``(False, element)`` for every
    complete element ``depth`` levels below the root, detaching each after use.

    Raises :class:`ImportRefused` with the line and column when the file is not well-formed.
    """
    stack: list[Element] = []
    try:
        for event, elem in iterparse(path, events=("start", "end"), forbid_dtd=False,
                                     forbid_entities=True, forbid_external=True):
            if event == "start":
                if not stack:
                    yield True, elem
                stack.append(elem)
                continue
            stack.pop()
            if len(stack) == depth:
                yield False, elem
                if stack:
                    stack[-1].remove(elem)
                elem.clear()
    except ParseError as exc:
        raise ImportRefused(f"not well-formed XML ({_position(exc)})") from None
    except EntitiesForbidden as exc:
        raise ImportRefused(f"the file declares the entity {exc.name!r}; entity expansion and "
                            "external entities are refused") from None
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
