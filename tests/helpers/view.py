"""Reading pages as a browser does: html5lib parses them, helpers find what a person sees."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import html5lib


def parse(html: str) -> Element:
    return html5lib.parse(html, namespaceHTMLElements=False)  # type: ignore[no-any-return]


def by_id(root: Element, element_id: str) -> Element | None:
    return next((e for e in root.iter() if e.get("id") == element_id), None)


def by_class(root: Element, name: str) -> list[Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def text_of(element: Element) -> str:
    """The element's text as a reader sees it, whitespace collapsed."""
    return " ".join("".join(element.itertext()).split())


def form_values(root: Element, form_class: str = "comment-form") -> dict[str, str]:
    """Every field of the form as the browser would submit it (inputs and textareas)."""
    form = by_class(root, form_class)[0]
    values: dict[str, str] = {}
    for field in form.iter():
        name = field.get("name")
        if not name:
            continue
        if field.tag == "input":
            values[name] = field.get("value") or ""
        elif field.tag == "textarea":
            values[name] = field.text or ""
    return values


def comment_tree(root: Element) -> list[tuple[int, int, str]]:
    """(comment id, displayed depth, author) for each shown comment, in page order."""
    out: list[tuple[int, int, str]] = []

    def walk(element: Element, depth: int) -> None:
        for child in element:
            if child.tag == "li" and "comment" in (child.get("class") or "").split():
                author = by_class(child, "comment__author")
                out.append(
                    (int(child.get("data-id") or 0), depth, text_of(author[0]) if author else "")
                )
                for sub in child:
                    if sub.tag == "ol":
                        walk(sub, depth + 1)
            else:
                walk(child, depth)

    lists = [e for e in root.iter() if e.get("data-comment-list") is not None]
    if lists:
        walk(lists[0], 1)
    return out
