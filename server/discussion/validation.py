"""Checking what a commenter sent, the same way for the HTML form and the JSON API.

Every field is checked and every problem reported at once, so the reader fixes everything in
one round. Messages are English here and translated at the edge (pages, widget).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from server.discussion import values
from server.discussion.errors import InvalidInput
from server.discussion.values import (
    LINE_BREAKS,
    MAX_AUTHOR,
    MAX_EMAIL,
    MAX_TEXT,
    MAX_TITLE,
    MAX_WEBSITE,
    has_lone_surrogate,
)
from server.i18n import N_

__all__ = [
    "LINE_BREAKS",
    "MAX_AUTHOR",
    "MAX_EMAIL",
    "MAX_TEXT",
    "MAX_TITLE",
    "MAX_WEBSITE",
    "CommentInput",
    "clean_text",
    "has_lone_surrogate",
    "normalise_website",
    "valid_email",
    "validate_comment",
    "validate_text",
    "validate_title",
]

_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))
_CONTROL[127] = None
TEXT_TOO_LONG = N_("Please shorten your comment to at most 10,000 characters.")


@dataclass(frozen=True)
class CommentInput:
    author: str
    email: str
    website: str | None
    text: str
    parent: int | None


def clean_text(value: str) -> str:
    """Drop control characters no one types on purpose (NUL breaks PostgreSQL text)."""
    return unicodedata.normalize("NFC", value.translate(_CONTROL))


def normalise_website(value: str) -> str | None:
    """``Example.com`` → ``https://example.com/``; returns None when it is no http(s) URL."""
    return values.web_address(value)


def _check(errors: dict[str, str], name: str, check: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one field's boundary function, collecting its message instead of stopping."""
    try:
        return check(*args, **kwargs)
    except InvalidInput as exc:
        errors.update(exc.fields)
        return None


def valid_email(value: str) -> bool:
    """Whether ``value`` is an e-mail address (the comment form's rule: values.email)."""
    try:
        values.email(value, "email")
    except InvalidInput:
        return False
    return True


def validate_comment(data: Mapping[str, Any]) -> CommentInput:
    """Return the cleaned input, or raise :class:`InvalidInput` naming every bad field."""
    errors: dict[str, str] = {}
    author = _check(
        errors,
        "author",
        values.clean_text,
        data.get("author"),
        "author",
        max_length=MAX_AUTHOR,
        required=N_("Please enter your name."),
        too_long=N_("Please use at most 100 characters."),
        # A name goes into mail headers and bodies: a line break there forges lines.
        line_break=N_("Please write your name on one line."),
    )
    email = _check(errors, "email", values.email, data.get("email"), "email")
    website = _check(errors, "website", values.website, data.get("website"), "website")
    text = _check(
        errors,
        "text",
        values.clean_text,
        data.get("text"),
        "text",
        max_length=MAX_TEXT,
        required=N_("Please write a comment."),
        too_long=TEXT_TOO_LONG,
    )
    parent: int | None = None
    raw_parent = data.get("parent")
    if raw_parent not in (None, ""):
        parent = _check(
            errors,
            "parent",
            values.parse_id,
            raw_parent,
            "parent",
            N_("The comment you reply to does not exist."),
        )
    if errors:
        raise InvalidInput(fields=errors)
    return CommentInput(author=author, email=email, website=website, text=text, parent=parent)


def validate_text(data: Mapping[str, Any]) -> str:
    """The text of an edit: the same rules as for a new comment's text."""
    text: str = values.clean_text(
        data.get("text"),
        "text",
        max_length=MAX_TEXT,
        required=N_("Please write a comment."),
        too_long=TEXT_TOO_LONG,
    )
    return text


def validate_title(value: Any) -> str | None:
    """A thread title a page sent with its first comment: one line, cut at MAX_TITLE."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value[: MAX_TITLE * 2]
    title = values.clean_text(value, "title", max_length=MAX_TITLE * 2, single_line=True)
    return title[:MAX_TITLE] or None
