# ruff: noqa: RUF002  (look-alike letters are this module's subject)
"""Is a name a staff member's (or a banned one), give or take a disguise?

Impersonators rarely type the name exactly: they change case, add spaces or dots, swap a
Latin letter for a Cyrillic or Greek one that looks the same, or write 1 for l. Both sides
are reduced to a skeleton before comparing. The look-alike letters come from Unicode's own
confusables table (UTS #39), as the maintained ``confusable-homoglyphs`` package ships it, not
from a hand-kept list. A false alarm only holds a comment for a moderator to look at, so the
reduction errs on the side of matching.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from functools import cache

from confusable_homoglyphs import confusables  # type: ignore[import-untyped]


@cache
def _latin(char: str) -> str:
    """The ASCII letter ``char`` is confusable with (``0`` → ``O``, ``|`` → ``l``), or ``char``."""
    if char.isascii() and char.isalpha():
        return char
    for glyph in confusables.confusables_data.get(char, ()):
        target = str(glyph["c"])
        if target.isascii() and target.isalpha():
            return target
    return char


def _fold(text: str) -> str:
    return "".join(_latin(c) for c in text)


def skeleton(name: str) -> str:
    """``"Ed1t0r "``, ``"E.D.I.T.O.R"`` and ``"Еditor"`` (Cyrillic Е) all become ``edltor``.

    Look-alikes are folded before and after case-folding (``I`` and ``1`` look like ``l``;
    once case is gone, so does ``i``), then accents and everything that is not a letter or
    digit (spaces, dots, dashes) are dropped.
    """
    folded = _fold(_fold(unicodedata.normalize("NFKC", name)).casefold()).replace("i", "l")
    stripped = "".join(
        c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c)
    )
    return "".join(c for c in stripped if c.isalnum())


def mailbox(email: str) -> str:
    """An address without case and ``+tag``: ``Editor+x@Blog.example`` → ``editor@blog.example``."""
    local, _, domain = email.strip().casefold().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}" if local else email.strip().casefold()


def impersonates(author: str, email: str, staff: Iterable[tuple[str, str | None]]) -> bool:
    """True when ``author`` looks like a staff name or ``email`` is a staff mailbox."""
    author_key, email_key = skeleton(author), mailbox(email)
    for name, staff_email in staff:
        if author_key and author_key == skeleton(name):
            return True
        if staff_email and email_key == mailbox(staff_email):
            return True
    return False
