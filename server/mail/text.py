"""Plain text for mails: comment HTML as readable text, and header-safe one-line values."""

from __future__ import annotations

import re
from html.parser import HTMLParser


class _PlainText(HTMLParser):
    """Sanitised comment HTML as plain text: paragraphs, line breaks, links with addresses."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.href: str | None = None
        self.link_start = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.out.append("\n")
        elif tag == "a":
            self.href = dict(attrs).get("href")
            self.link_start = len(self.out)
        elif tag in ("blockquote", "q"):
            self.out.append("“")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self.out.append("\n\n")
        elif tag == "a" and self.href:
            if "".join(self.out[self.link_start :]).strip() != self.href:
                self.out.append(f" <{self.href}>")
            self.href = None
        elif tag in ("blockquote", "q"):
            self.out.append("”")

    def handle_data(self, data: str) -> None:
        self.out.append(data)


def plain_text(fragment: str) -> str:
    parser = _PlainText()
    parser.feed(fragment)
    parser.close()
    return re.sub(r"\n{3,}", "\n\n", "".join(parser.out)).strip()


def one_line(value: str) -> str:
    """Header-safe: a name or title with a line break must not start a new header."""
    return " ".join(value.split())
