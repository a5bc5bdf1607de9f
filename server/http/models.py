"""The JSON API's request and response shapes, as msgspec Structs.

These are the single description of what ``/api`` takes and answers: ``GET /api/openapi.json``
is generated from them (server/http/openapi.py), the limits come from the same constants the
value boundary enforces (server/discussion/values.py), and the suite fuzzes the running server
against the document and checks every answer against these shapes (forbid_unknown_fields:
a field a handler adds without adding it here fails the fuzz tests).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta, Struct

from server.auth.sso import MAX_TOKEN as SSO_MAX_TOKEN
from server.discussion.bans import MAX_REASON, MAX_SUB
from server.discussion.paging import SORTS
from server.discussion.values import (
    MAX_AUTHOR,
    MAX_EMAIL,
    MAX_ID,
    MAX_TEXT,
    MAX_TITLE,
    MAX_URI,
    MAX_WEBSITE,
)
from server.webhooks.events import EVENTS
from server.webhooks.service import MAX_URL as MAX_WEBHOOK_URL

Id = Annotated[int, Meta(ge=1, le=MAX_ID, description="A comment id (64-bit).")]
Stamp = Annotated[str, Meta(description="UTC, ISO 8601 with Z: 2024-05-01T12:00:00Z.")]
EMAIL = {"format": "email"}
URL = {"format": "uri", "description": "http(s) only; a bare host gets https://."}
AnyStatus = Literal["approved", "pending", "spam", "deleted"]
Sort = Literal["oldest", "newest", "best"]
Event = Literal[
    "comment.created",
    "comment.pending",
    "comment.approved",
    "comment.updated",
    "comment.deleted",
    "comment.spam",
    "thread.closed",
]
# Spelled out for the type checker; the tables they describe stay the one source of truth.
assert get_args(Sort) == SORTS and get_args(Event) == tuple(EVENTS)
Up = Annotated[int, Meta(ge=0, description="Up votes.")]
Down = Annotated[int, Meta(ge=0, description="Down votes.")]
Pinned = Annotated[bool, Meta(description="Shown first, in every order.")]


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
    up: Up
    down: Down
    pinned: Pinned
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
    up: Up
    down: Down
    pinned: Pinned
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
    up: Up
    down: Down
    pinned: Pinned
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
    """A thread's approved comments (or one page of them) and the live cursor to resume from."""

    uri: Annotated[str, Meta(max_length=MAX_URI)]
    count: int
    cursor: int
    top_level: Annotated[int, Meta(ge=0, description="Top-level comments in the thread.")]
    next: Annotated[
        str | None, Meta(description="Send as ?after= for the next page; null on the last.")
    ]
    closed: Annotated[bool, Meta(description="The thread takes no new comments.")]
    comments: list[PublicComment]
    sort: Sort | msgspec.UnsetType = msgspec.UNSET


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
    page_size: Annotated[int, Meta(description="Top-level comments per page.")]
    votes: Literal["updown", "up", "off"]
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


# -- big threads: votes, pins, closing ------------------------------------------------------


class NewVote(Struct):
    """``POST /api/comments/{id}/vote``: 1, -1 or 0 (withdraw), as a voter or an SSO user."""

    value: Literal[1, -1, 0]
    voter: Annotated[str, Meta(description="From POST /api/voters.")] | None = None
    sso: Annotated[str, Meta(max_length=SSO_MAX_TOKEN, description="As for comments.")] | None = (
        None
    )


class Voter(Shape):
    voter: Annotated[str, Meta(description="A signed anonymous voter id; keep it.")]


class Tally(Shape):
    """A comment's votes after this one, and this reader's own vote."""

    id: Id
    up: Up
    down: Down
    mine: Literal[1, -1, 0]


class ThreadState(Shape):
    uri: str
    closed: bool


# -- webhooks --------------------------------------------------------------------------------


class NewWebhook(Struct):
    """``POST /api/webhooks``: where to send which events; private endpoints get ``S``."""

    url: Annotated[str, Meta(max_length=MAX_WEBHOOK_URL, extra_json_schema=URL)]
    events: Annotated[list[Event], Meta(min_length=1)]
    private: bool = False
    secret: Annotated[str, Meta(description="whsec_ and the base64 of 24 to 64 bytes.")] | None = (
        None
    )


class Webhook(Shape):
    """An endpoint; ``secret`` only in the answer that created it."""

    id: Id
    url: str
    events: list[Event]
    private: bool
    secret: str | msgspec.UnsetType = msgspec.UNSET


class WebhookStatus(Shape):
    """An endpoint as listed: no secret, with its delivery counts."""

    id: Id
    url: str
    events: list[Event]
    private: bool
    waiting: int
    delivered: int
    failed: int
    last_error: str | None


class Webhooks(Shape):
    webhooks: list[WebhookStatus]


class Health(Struct):
    """``/healthz``: the database's state, plus one entry per optional part (mail, Redis)."""

    status: Literal["ok", "unavailable"]
    database: str


class Diagnostics(Shape):
    """``/api/diagnostics``: one process's figures, for staff watching for leaks."""

    host: Annotated[str, Meta(description="the host (a container's id) that answered")]
    pid: int
    uptime_seconds: float
    tasks: Annotated[int, Meta(description="asyncio tasks alive in this process")]
    threads: int
    open_fds: Annotated[int | None, Meta(description="null where the OS does not say")]
    rss_kib: Annotated[int | None, Meta(description="resident memory; null likewise")]
    live_rooms: Annotated[int, Meta(description="threads with a live reader here")]
    live_readers: Annotated[int, Meta(description="live-channel readers connected here")]
    answers_kept: Annotated[int, Meta(description="answers kept to be given again")]
    answers_given_again: Annotated[
        int, Meta(description="requests answered with a kept answer since the start")
    ]
    answers_checked: Annotated[
        int,
        Meta(
            description="reads made to check that a kept answer still stands (none while "
            "the storage's change mark shows nothing was committed)"
        ),
    ]
    answers_gzipped: Annotated[
        int,
        Meta(description="kept answers compressed for requests that accept gzip, once each"),
    ]


Counts = Annotated[
    dict[str, int],
    Meta(title="Counts", description="Approved comments per asked uri, as asked."),
]
OpenAPI = Annotated[dict[str, Any], Meta(title="OpenAPI", description="This document.")]
