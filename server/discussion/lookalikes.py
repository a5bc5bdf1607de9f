# ruff: noqa: RUF001, RUF002  (look-alike letters are this module's subject)
"""Is a commenter's name or e-mail a staff member's, give or take a disguise?

Impersonators rarely type the name exactly: they change case, add spaces or dots, swap a
Latin letter for a Cyrillic or Greek one that looks the same, or write 1 for l. Both sides
are reduced to a skeleton before comparing. A false alarm only holds a comment for a
moderator to look at, so the reduction errs on the side of matching.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

# Letters that render like Latin ones (Cyrillic, Greek) and digits used as letters.
_CONFUSABLES = str.maketrans(
    {
        "а": "a",
        "в": "b",
        "е": "e",
        "ё": "e",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "р": "p",
        "с": "c",
        "т": "t",
        "у": "y",
        "х": "x",
        "і": "l",
        "ї": "l",
        "ј": "j",
        "ѕ": "s",
        "ԁ": "d",
        "ԛ": "q",
        "ԝ": "w",
        "ɡ": "g",
        "ո": "n",
        "α": "a",
        "β": "b",
        "ε": "e",
        "η": "n",
        "ι": "l",
        "κ": "k",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
        "ω": "w",
        "0": "o",
        "1": "l",
        "i": "l",
        "|": "l",
        "!": "l",
        "3": "e",
        "5": "s",
        "@": "a",
        "$": "s",
    }
)


def skeleton(name: str) -> str:
    """``"Ed1t0r "``, ``"E.D.I.T.O.R"`` and ``"Еditor"`` (Cyrillic Е) all become ``edltor``."""
    folded = unicodedata.normalize("NFKC", name).casefold().translate(_CONFUSABLES)
    # Drop accents, then everything that is not a letter or digit (spaces, dots, dashes).
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
