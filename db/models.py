"""What the data layer hands out: frozen dataclasses, never driver rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from db.database import Row


class Status(StrEnum):
    """A comment's status. Only ``approved`` is shown to readers (and placeholders of
    ``deleted``/``spam`` comments that keep approved replies in place). Listed in the order
    the moderation lists and messages name them: the queue first."""

    PENDING = "pending"
    APPROVED = "approved"
    SPAM = "spam"
    DELETED = "deleted"


STATUSES = tuple(Status)


def as_datetime(value: Any) -> datetime:
    """Read a timestamp from either backend: PostgreSQL gives datetimes, SQLite ISO text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def maybe_datetime(value: Any) -> datetime | None:
    return None if value is None else as_datetime(value)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Thread:
    id: int
    uri: str
    title: str | None
    last_seq: int
    # None: nobody decided (KIBITZ_CLOSE_AFTER_DAYS may close it); True/False: staff did.
    closed_flag: bool | None = None
    votes_seq: int = 0  # vote changes; with last_seq it versions what readers see

    @property
    def closed(self) -> bool:
        return self.closed_flag is True

    @property
    def version(self) -> tuple[int, int]:
        """Names one exact state of the thread as readers see it, vote counts included."""
        return (self.last_seq, self.votes_seq)

    @classmethod
    def from_row(cls, row: Row) -> Thread:
        keys = set(row.keys())
        closed = row["closed"] if "closed" in keys else None
        return cls(
            row["id"],
            row["uri"],
            row["title"],
            row["last_seq"],
            None if closed is None else bool(closed),
            row["votes_seq"] if "votes_seq" in keys else 0,
        )


@dataclass(frozen=True)
class Post:
    id: int
    slug: str
    title: str
    author: str
    body_html: str
    categories: tuple[str, ...]
    language: str | None
    published: datetime
    thread_id: int
    comment_count: int = 0

    @property
    def uri(self) -> str:
        return f"/posts/{self.slug}"

    @classmethod
    def from_row(cls, row: Row) -> Post:
        keys = set(row.keys())  # asyncpg gives a one-pass iterator
        return cls(
            id=row["id"],
            slug=row["slug"],
            title=row["title"],
            author=row["author"],
            body_html=row["body_html"],
            categories=tuple(json.loads(row["categories"] or "[]")),
            language=row["language"],
            published=as_datetime(row["published"]),
            thread_id=row["thread_id"],
            comment_count=row["comment_count"] if "comment_count" in keys else 0,
        )


@dataclass(frozen=True)
class Comment:
    """A comment with everything the database knows, private fields included.

    Only :func:`server.discussion.shapes.public_comment` decides what a reader may see of it.
    """

    id: int
    thread_id: int
    parent_id: int | None
    author: str
    email: str
    website: str | None
    text: str
    html: str
    status: str
    reason: str | None
    address: str | None
    staff_id: int | None
    created: datetime
    edited: datetime | None
    source: str | None = None
    staff_name: str | None = None
    version: int = 1  # grows with every change of the text (approvals name the one they saw)
    sso_sub: str | None = None
    pinned: bool = False
    up: int = 0
    down: int = 0

    @property
    def score(self) -> int:
        return self.up - self.down

    @property
    def staff(self) -> bool:
        return self.staff_id is not None

    @property
    def verified(self) -> bool:
        """Signed in by the host site (single sign-on): the site vouches for the name."""
        return self.sso_sub is not None

    @classmethod
    def from_row(cls, row: Row) -> Comment:
        keys = set(row.keys())  # asyncpg gives a one-pass iterator
        return cls(
            id=row["id"],
            thread_id=row["thread_id"],
            parent_id=row["parent_id"],
            author=row["author"],
            email=row["email"],
            website=row["website"],
            text=row["text"],
            html=row["html"],
            status=row["status"],
            reason=row["reason"],
            address=row["address"],
            staff_id=row["staff_id"],
            created=as_datetime(row["created"]),
            edited=maybe_datetime(row["edited"]),
            source=row["source"] if "source" in keys else None,
            staff_name=row["staff_name"] if "staff_name" in keys else None,
            pinned=bool(row["pinned"]) if "pinned" in keys else False,
            up=row["up"] if "up" in keys else 0,
            down=row["down"] if "down" in keys else 0,
            version=row["version"] if "version" in keys else 1,
            sso_sub=row["sso_sub"] if "sso_sub" in keys else None,
        )


@dataclass(frozen=True)
class Event:
    """One change readers must see, named by its thread's ``seq``.

    ``comment``: the comment as the event's own transaction committed it, when the writer
    has it at hand (a new comment), so the live path need not read it again; else None.
    """

    thread_id: int
    seq: int
    type: str
    comment_id: int
    uri: str = ""
    comment: Comment | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class StaffMember:
    id: int
    name: str
    email: str | None
    role: str

    @classmethod
    def from_row(cls, row: Row) -> StaffMember:
        return cls(row["id"], row["name"], row["email"], row["role"])
