"""Checking what a commenter sent, the same way for the HTML form and the JSON API.

Every field is checked and every problem reported at once, so the reader fixes everything in
one round. Messages are English here and translated at the edge (pages, widget).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from server.discussion.errors import InvalidInput
from server.i18n import N_

# The limits are spelled out in the messages below too, so that they can be translated.
MAX_AUTHOR, MAX_EMAIL, MAX_WEBSITE, MAX_TEXT = 100, 254, 500, 10_000
_EMAIL = re.compile(
    r"^[^@\s\"<>(),;:\\\[\]]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))
_CONTROL[127] = None
# Every character that breaks a line somewhere (mail, logs, terminals); none fits in a name.
LINE_BREAKS = frozenset("\r\n\v\f\x85\u2028\u2029")


@dataclass(frozen=True)
class CommentInput:
    author: str
    email: str
    website: str | None
    text: str
    parent: int | None


def _as_text(value: Any) -> str | None:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return None


def has_lone_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def clean_text(value: str) -> str:
    """Drop control characters no one types on purpose (NUL breaks PostgreSQL text)."""
    return unicodedata.normalize("NFC", value.translate(_CONTROL))


def normalise_website(value: str) -> str | None:
    """``Example.com`` → ``https://example.com/``; returns None when it is no http(s) URL."""
    value = value.strip()
    if not value:
        return None
    if "://" not in value:
        value = "https://" + value
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if any(c.isspace() for c in value) or (
        "." not in parts.hostname and parts.hostname != "localhost"
    ):
        return None
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def valid_email(value: str) -> bool:
    """Whether ``value`` looks like an e-mail address (the comment form's rule)."""
    return bool(_EMAIL.match(value))


def validate_comment(data: Mapping[str, Any]) -> CommentInput:
    """Return the cleaned input, or raise :class:`InvalidInput` naming every bad field."""
    errors: dict[str, str] = {}
    values: dict[str, str] = {}
    for name in ("author", "email", "website", "text"):
        raw = _as_text(data.get(name))
        if raw is None:
            errors[name] = N_("This must be text.")
            continue
        if has_lone_surrogate(raw):
            errors[name] = N_("This contains characters that are not valid text.")
            continue
        values[name] = clean_text(raw)

    author = values.get("author", "").strip()
    if "author" not in errors:
        if not author:
            errors["author"] = N_("Please enter your name.")
        elif any(c in LINE_BREAKS for c in author):
            # A name goes into mail headers and bodies: a line break there forges lines.
            errors["author"] = N_("Please write your name on one line.")
        elif len(author) > MAX_AUTHOR:
            errors["author"] = N_("Please use at most 100 characters.")

    email = values.get("email", "").strip()
    if "email" not in errors:
        if not email:
            errors["email"] = N_("Please enter your e-mail address.")
        elif len(email) > MAX_EMAIL or not _EMAIL.match(email):
            errors["email"] = N_("Please enter a valid e-mail address.")

    website: str | None = None
    raw_site = values.get("website", "").strip()
    if "website" not in errors and raw_site:
        if len(raw_site) > MAX_WEBSITE:
            errors["website"] = N_("Please use at most 500 characters.")
        else:
            website = normalise_website(raw_site)
            if website is None or len(website) > MAX_WEBSITE:
                errors["website"] = N_(
                    "Please enter a web address starting with http:// or https://."
                )

    text = values.get("text", "").strip()
    if "text" not in errors:
        if not text:
            errors["text"] = N_("Please write a comment.")
        elif len(text) > MAX_TEXT:
            errors["text"] = N_("Please shorten your comment to at most 10,000 characters.")

    parent: int | None = None
    raw_parent = data.get("parent")
    if raw_parent is not None and raw_parent != "":
        try:
            if isinstance(raw_parent, bool):
                raise ValueError
            parent = int(raw_parent)
            if parent <= 0:
                raise ValueError
        except (TypeError, ValueError):
            errors["parent"] = N_("The comment you reply to does not exist.")

    if errors:
        raise InvalidInput(fields=errors)
    return CommentInput(author=author, email=email, website=website, text=text, parent=parent)


def validate_text(data: Mapping[str, Any]) -> str:
    """The text of an edit: the same rules as for a new comment's text."""
    raw = _as_text(data.get("text"))
    if raw is None or has_lone_surrogate(raw):
        raise InvalidInput(fields={"text": N_("This must be valid text.")})
    text = clean_text(raw).strip()
    if not text:
        raise InvalidInput(fields={"text": N_("Please write a comment.")})
    if len(text) > MAX_TEXT:
        raise InvalidInput(
            fields={"text": N_("Please shorten your comment to at most 10,000 characters.")}
        )
    return text
