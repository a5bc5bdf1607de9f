"""What the posting policy must know about a comment before it is stored, in one read.

Every anonymous POST asks up to four questions: was the same text posted on this thread
moments ago, does a live ban cover the commenter, which names and mailboxes staff use (nobody
may pose as them), and was this commenter approved before (first-time moderation). Asked one
by one they were four round trips on PostgreSQL, a fifth of a POST's CPU; here they are one
statement whose rows say which question each answers. The questions' own SQL stays with the
stores that own it (:mod:`db.moderation`, :mod:`db.bans`, :mod:`db.comments`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db.bans import LIVE_MATCH
from db.comments import KNOWN_BY_EMAIL, KNOWN_BY_SUB, text_key
from db.database import Database
from db.moderation import DUPLICATE


@dataclass(frozen=True)
class Question:
    """What to ask; a question left ``None`` is not asked."""

    # The duplicate check: the thread's uri, the text, and how far back to look.
    uri: str
    text: str
    duplicate_since: datetime | None
    # The ban check's keys (see :func:`server.discussion.bans.ban_keys`), or None for no check.
    ban: tuple[str, str | None, str, str | None] | None
    # Whether the commenter was approved before: their e-mail address, or their SSO user id.
    known_email: str | None = None
    known_sub: str | None = None


@dataclass(frozen=True)
class Screening:
    duplicate: bool
    banned: bool
    staff: list[tuple[str, str | None]]
    known: bool


class _Parameters:
    """``$n`` placeholders handed out in order, each value once."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _statement(question: Question, at: datetime) -> tuple[str, list[Any]]:
    arg = _Parameters()
    parts = ["SELECT 'staff' AS kind, name, email FROM staff"]
    if question.duplicate_since is not None:
        found = DUPLICATE.format(
            uri=arg(question.uri),
            key=arg(text_key(question.text)),
            since=arg(question.duplicate_since),
        )
        parts.append(f"SELECT 'duplicate', NULL, NULL FROM ({found}) d")
    if question.ban is not None:
        email, sub, name_key, address_key = question.ban
        live = LIVE_MATCH.format(
            at=arg(at),
            email=arg(email),
            sub=arg(sub),
            name_key=arg(name_key),
            address=arg(address_key),
        )
        banned = f"SELECT 1 FROM bans WHERE {live} LIMIT 1"
        parts.append(f"SELECT 'banned', NULL, NULL FROM ({banned}) b")
    known = None
    if question.known_sub is not None:
        known = KNOWN_BY_SUB.format(sub=arg(question.known_sub))
    elif question.known_email is not None:
        known = KNOWN_BY_EMAIL.format(email=arg(question.known_email))
    if known is not None:
        parts.append(f"SELECT 'known', NULL, NULL FROM ({known}) k")
    return " UNION ALL ".join(parts), arg.values


async def screen(db: Database, question: Question, at: datetime) -> Screening:
    """Every answer ``question`` asks for, from one statement by the cheapest path."""
    sql, args = _statement(question, at)
    rows = await db.lookup_all(sql, *args)
    kinds = {row["kind"] for row in rows}
    return Screening(
        duplicate="duplicate" in kinds,
        banned="banned" in kinds,
        staff=[(row["name"], row["email"]) for row in rows if row["kind"] == "staff"],
        known="known" in kinds,
    )
