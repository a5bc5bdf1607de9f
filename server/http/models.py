"""The JSON API's request and response shapes, as msgspec Structs.

These are the single description of what ``/api`` takes and answers: ``GET /api/openapi.json``
is generated from them (server/http/openapi.py), the limits come from the same constants the
value boundary enforces (server/discussion/values.py), and the suite fuzzes the running server
against the document and checks every answer against these shapes (forbid_unknown_fields:
a field a handler adds without adding it here fails the fuzz tests).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from server.auth.sso import MAX_TOKEN as SSO_MAX_TOKEN
from server.discussion.bans import MAX_REASON, MAX_SUB
from server.discussion.values import (
    MAX_AUTHOR,
    MAX_EMAIL,
    MAX_ID,
    MAX_TEXT,
    MAX_TITLE,
    MAX_URI,
    MAX_WEBSITE,
)

Id = Annotated[int, Meta(ge=1, le=MAX_ID, description="A comment id (64-bit).")]
Stamp = Annotated[str, Meta(description="UTC, ISO 8601 with Z: 2024-05-01T12:00:00Z.")]
EMAIL = {"format": "email"}
URL = {"format": "uri", "description": "http(s) only; a bare host gets https://."}
AnyStatus = Literal["approved", "pending", "spam", "deleted"]


class Shape(Struct, forbid_unknown_fields=True):
    """Base: answers must not carry fields the document does not name."""


# -- errors ----------------------------------------------------------------------------------


class Error(Shape):
    """Every 4xx/5xx JSON answer: a sentence for people, and a message per bad field."""

    error: str
    fields: dict[str, str] = msgspec.field(default_factory=dict)


# -- requests --------------------------------------------------------------------------------


class NewComment(Struct):
    """``POST /api/comments``. Unknown fields are ignored; every bad field is reported."""

    uri: Annotated[str, Meta(min_length=1, description="The page's path or URL.")]
    author: Annotated[str, Meta(min_length=1, max_length=MAX_AUTHOR, description="One line.")]
    email: Annotated[
        str,
        Meta(max_length=MAX_EMAIL, description="Kept private.", extra_json_schema=EMAIL),
    ]
    text: Annotated[str, Meta(min_length=1, max_length=MAX_TEXT, description="Plain text.")]
    website: Annotated[str, Meta(max_length=MAX_WEBSITE, extra_json_schema=URL)] | None = None
    parent: Id | None = None
    title: Annotated[str, Meta(description=f"Thread title, cut at {MAX_TITLE}.")] | None = None
    notify: bool = False
    sso: (
        Annotated[
            str,
            Meta(
                max_length=SSO_MAX_TOKEN,
                description="The embedding site's signed-in reader: an HS256 JWT (sub, name, "
                "email, exp). Its name and address replace the body's.",
            ),
        ]
        | None
    ) = None


class NewBan(Struct):
    """``POST /api/bans``: at least one of email, address, sub and name."""

    email: Annotated[str, Meta(max_length=MAX_EMAIL, extra_json_schema=EMAIL)] | None = None
    address: Annotated[str, Meta(description="An IP address or a CIDR network.")] | None = None
    sub: (
        Annotated[str, Meta(max_length=MAX_SUB, description="A single sign-on user id.")] | None
    ) = None
    name: Annotated[str, Meta(max_length=MAX_AUTHOR, description="Look-alikes too.")] | None = None
    reason: Annotated[str, Meta(max_length=MAX_REASON)] | None = None
    expires: Stamp | None = None


class EditComment(Struct):
    """``PATCH /api/comments/{id}``: the new text (with the edit token or as staff)."""

    text: Annotated[str, Meta(min_length=1, max_length=MAX_TEXT)]


# -- answers ---------------------------------------------------------------------------------


class PublicComment(Shape):
    """``C``: what every reader sees. A removed comment with replies is a placeholder."""

    id: Id
    parent: Id | None
    author: str
    website: str | None
    html: str
    created: Stamp | None
    edited: Stamp | None
    status: Literal["approved", "deleted"]
    staff: bool
    verified: Annotated[bool, Meta(description="Written by a reader the site signed in.")]


class OwnComment(Shape):
    """The commenter's own view right after writing: held comments show their text too."""

    id: Id
    parent: Id | None
    author: str
    website: str | None
    html: str
    created: Stamp | None
    edited: Stamp | None
    status: AnyStatus
    staff: bool
    verified: bool


class StaffComment(Shape):
    """``S``: the moderation view, private fields included (staff only)."""

    id: Id
    parent: Id | None
    author: str
    website: str | None
    html: str
    created: Stamp | None
    edited: Stamp | None
    status: AnyStatus
    staff: bool
    email: str
    address: str | None
    reason: str | None
    text: str
    thread_id: int
    verified: bool
    version: Annotated[int, Meta(description="Send back as ?version= to act on this one.")]
    sub: Annotated[str | None, Meta(description="The site's user id (single sign-on).")]
    uri: str | msgspec.UnsetType = msgspec.UNSET


class Thread(Shape):
    """A thread's approved comments, oldest first, and the live cursor to resume from."""

    uri: Annotated[str, Meta(max_length=MAX_URI)]
    count: int
    cursor: int
    comments: list[PublicComment]


class Created(Shape):
    comment: OwnComment
    edit_token: Annotated[str, Meta(description="Send as 'Authorization: Bearer …' to edit.")]


class Edited(Shape):
    comment: OwnComment


class Moderated(Shape):
    comment: StaffComment


class Queue(Shape):
    status: AnyStatus
    comments: list[StaffComment]


class Config(Shape):
    notify: bool
    live_url: str | None
    language: str
    edit_window: int
    moderation: str
    max_depth: int
    follow_author_links: bool
    origin_allowed: bool
    sso: bool
    sso_only: bool
    sso_login_url: str | None


class Ban(Shape):
    """A ban as staff see it; never shown to readers."""

    id: Id
    email: str | None
    address: str | None
    sub: str | None
    name: str | None
    reason: str
    expires: Stamp | None
    created: Stamp | None
    by: str | None
    live: bool


class Bans(Shape):
    bans: list[Ban]


class Health(Struct):
    """``/healthz``: the database's state, plus one entry per optional part (mail, Redis)."""

    status: Literal["ok", "unavailable"]
    database: str


Counts = Annotated[
    dict[str, int],
    Meta(title="Counts", description="Approved comments per asked uri, as asked."),
]
OpenAPI = Annotated[dict[str, Any], Meta(title="OpenAPI", description="This document.")]
