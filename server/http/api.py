"""The JSON API under ``/api``: what the post pages' script, the widget and operators use."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db.comments import Submission, Submitted, visible_states
from db.errors import Unavailable
from db.models import Comment, StaffMember, Status
from db.models import Thread as StoredThread
from db.moderation import ModerationStore
from server.auth import sso
from server.auth.identity import authorise_edit, current_staff, require_staff
from server.discussion import values
from server.discussion.actions import AlreadySubmitted
from server.discussion.bans import BANNED
from server.discussion.errors import InvalidInput
from server.discussion.moderation import API_ACTIONS, Action, parse_action
from server.discussion.paging import MAX_LIMIT, SORTS
from server.discussion.shapes import APPROVED, own_comment, public_comment, staff_comment
from server.discussion.uris import normalise_uri
from server.discussion.validation import validate_comment, validate_text, validate_title
from server.errors import BadRequest, Forbidden, KibitzError, NotFound, ValidationFailed
from server.http import idempotency, origins, replay, threads
from server.http.bodies import encode_json, json_response, read_json
from server.http.clients import client_address
from server.http.models import (
    Config,
    Counts,
    Created,
    EditComment,
    Edited,
    Error,
    Moderated,
    NewComment,
    Queue,
    Thread,
)
from server.http.openapi import STAFF_ONLY, Operation, Param, documented
from server.http.params import query_uri, required_uri
from server.state import State, state_of

MAX_COUNT_URIS = 100
URI = Param("uri", {"type": "string", "minLength": 1}, "The page's path or URL.", required=True)
MAX_VERSION = 2**31 - 1
VERSION = Param(
    "version",
    {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
    "The comment version the moderator saw (a stale one is a 409); omit to act on the current.",
)


async def _audit(
    request: Request, staff: StaffMember | None, action: str, target: str, detail: str | None = None
) -> None:
    """Record a staff action in the audit log."""
    if staff is not None:
        await state_of(request).audit.record(staff.id, staff.name, action, target, detail)


@documented(
    Operation(
        summary="A thread's approved comments (and placeholders): all, or one page",
        description="With sort, limit or after: one keyset page of top-level comments (pinned "
        "first), each with all its replies; follow `next` for the rest. While the database is "
        "down the answer may be this process's last copy of the thread (header Kibitz-Stale).",
        params=(
            URI,
            Param("sort", {"enum": list(SORTS)}, "Order of top-level comments (oldest)."),
            Param(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                "Top-level comments per page; without it, the whole thread.",
            ),
            Param(
                "after",
                {"type": "string", "minLength": 1, "maxLength": 500},
                "The `next` of the page before.",
            ),
        ),
        responses={200: Thread, 400: Error, 503: Error},
        headers={
            200: {"Kibitz-Stale": "Present when the answer is a stale copy (database down)."},
            503: {"Retry-After": "Seconds to wait."},
        },
    )
)
async def read_comments(request: Request) -> Response:
    state = state_of(request)
    uri = required_uri(request.query_params)
    if any(name in request.query_params for name in ("sort", "limit", "after")):
        return await threads.read_page(request, uri)  # keyset pages (big threads)
    try:
        return await _read_comments(request, uri)
    except Unavailable:
        # The database is down: the thread as this process last read it, rather than a 503.
        stale = state.cache.last(uri)
        if stale is None:
            raise
        return Response(
            stale, media_type="application/json", headers={"Kibitz-Stale": "database unavailable"}
        )


def _read_version(state: State, thread: StoredThread | None) -> Hashable:
    """All a whole-thread read depends on: nothing while there is no thread."""
    return None if thread is None else state.thread_version(thread)


async def _read_comments(request: Request, uri: str) -> Response:
    state = state_of(request)
    thread, cursor = await state.comments.cursor(uri)

    async def version_now() -> Hashable:
        return _read_version(state, await state.comments.thread(uri))

    if thread is None:
        replay.allow(request, None, version_now, mark=state.change_mark)
        return json_response(
            {
                "uri": uri,
                "count": 0,
                "cursor": 0,
                "top_level": 0,
                "next": None,
                "closed": False,
                "comments": [],
            }
        )
    # Vote counts are part of what readers see, so the cache key is the thread's version.
    version = (cursor, thread.votes_seq, state.votes.local_version(thread.id))
    cached = state.cache.get(thread.id, version)
    exact = cached is not None  # the body shows exactly the version looked up
    if cached is None:
        # The comments and their cursor come from one snapshot. The body is cached only when
        # that snapshot is the version looked up above: ``closed`` comes from that lookup,
        # and closing bumps the cursor, so a body is never cached under a version it is not.
        snapshot, comments = await state.comments.visible_with_cursor(thread.id)
        states = visible_states((c.id, c.parent_id, c.status) for c in comments)
        body = {
            "uri": thread.uri,
            "count": sum(1 for c in comments if c.status == APPROVED),
            "cursor": snapshot,
            "top_level": sum(1 for c in comments if c.parent_id not in states),
            "next": None,
            "closed": thread.closed,
            "comments": [public_comment(c, states[c.id]) for c in comments],
        }
        cached = encode_json(body)
        exact = snapshot == cursor
        if exact:
            state.cache.put(thread.id, version, cached)
    if exact:
        replay.allow(request, _read_version(state, thread), version_now, mark=state.change_mark)
    state.cache.remember(uri, cursor, cached)
    return Response(cached, media_type="application/json")


@documented(
    Operation(
        summary="Post a comment (201 even when it is held for moderation)",
        body=NewComment,
        params=(
            Param(
                "Idempotency-Key",
                {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[\\x20-\\x7e]+$"},
                "The same key and body within 24 h answer the first answer again and create "
                "nothing (header Idempotency-Replayed); the same key with another body is 409.",
                where="header",
            ),
        ),
        headers={
            429: {"Retry-After": "Seconds to wait."},
            503: {"Retry-After": "Seconds to wait."},
        },
        responses={
            201: Created,
            400: Error,
            401: Error,
            403: Error,
            409: Error,
            413: Error,
            415: Error,
            422: Error,
            429: Error,
            503: Error,
        },
        description="A page that is no post may start a thread only from an allowed "
        "Origin. The e-mail and address are never shown to readers.",
    )
)
async def post_comment(request: Request) -> Response:
    state = state_of(request)
    origin = request.headers.get("origin")
    if not origins.allowed(state.settings, request, origin):
        raise Forbidden(
            "This site is not allowed to post comments here "
            "(add its origin to KIBITZ_ALLOWED_ORIGINS)."
        )
    key = idempotency.header_key(request)
    data = await read_json(request)
    submission = Submission(key, idempotency.body_hash(data), 201) if key else None
    if submission is not None:
        found = await idempotency.earlier(state, submission)
        if found is not None:
            return await _answer_again(request, found)
    staff = await current_staff(request)
    fields: dict[str, str] = {}
    uri = title = entry = None
    try:
        raw_uri = data.get("uri")
        if not isinstance(raw_uri, str) or not raw_uri.strip():
            raise InvalidInput(
                fields={"uri": "Give the page's path, such as /2010/07/social-media/."}
            )
        uri = normalise_uri(raw_uri)
    except InvalidInput as exc:  # report every field at once
        fields.update(exc.fields)
    try:
        title = validate_title(data.get("title"))
    except InvalidInput as exc:
        fields.update(exc.fields)
    signed_in: sso.SsoUser | None = None
    if not fields:
        signed_in = await _signed_in(request, data, staff)
    if signed_in is not None:
        # The site vouches for who this is: its name and address, never the body's.
        data = {
            **data,
            "author": signed_in.name,
            "email": signed_in.email,
            "website": signed_in.website or data.get("website") or "",
        }
    try:
        entry = validate_comment(data)
    except InvalidInput as exc:
        from_token = {"author", "email", "website" if signed_in and signed_in.website else ""}
        if signed_in is not None and from_token & set(exc.fields):
            # The site signed a name or address kibitz cannot take: its token is at fault,
            # not the reader, who cannot change those fields.
            raise sso.SsoRejected(sso.BAD_CLAIMS) from None
        fields.update(exc.fields)
    if fields or uri is None or entry is None:
        raise InvalidInput(fields=fields)
    is_post = await state.posts.exists_for_uri(uri)
    may_create = is_post or (origin is not None) or staff is not None
    try:
        comment = await state.discussion.submit(
            uri,
            entry,
            address=client_address(request, state.settings.trusted_proxies),
            staff=staff,
            may_create_thread=may_create,
            title=title,
            sso_sub=signed_in.sub if signed_in else None,
            submission=submission,
        )
    except AlreadySubmitted:
        # The same key at the same moment: the other request committed first.
        assert submission is not None
        found = await idempotency.earlier(state, submission)
        if found is None:
            raise KibitzError() from None
        return await _answer_again(request, found)
    await _audit(request, staff, "post", f"comment {comment.id}", uri)
    if data.get("notify") is True and state.mail is not None:
        await state.mail.subscribe(comment)  # reply mail, after a confirmation mail
    return json_response(
        {"comment": own_comment(comment), "edit_token": state.edit_tokens.issue(comment.id)},
        status=201,
    )


async def _answer_again(request: Request, found: Submitted) -> Response:
    """The first answer again: same status, same comment (as it is now), a new edit token."""
    state = state_of(request)
    comment = await state.comments.get(found.comment_id) if found.comment_id else None
    if comment is None:
        raise KibitzError()
    return json_response(
        {"comment": own_comment(comment), "edit_token": state.edit_tokens.issue(comment.id)},
        status=found.status,
        headers={"Idempotency-Replayed": "true"},
    )


async def _signed_in(
    request: Request, data: dict[str, Any], staff: StaffMember | None
) -> sso.SsoUser | None:
    """The reader the embedding site signed in with ``"sso"``, if any (401 for a bad token).

    With ``KIBITZ_SSO_ONLY`` a comment without a valid token is refused; staff post as
    themselves.
    """
    settings = state_of(request).settings
    token = data.get("sso")
    if token is not None:
        return sso.verify(token, settings.sso_secret)
    if settings.sso_only and staff is None:
        raise sso.SsoRejected(sso.SIGN_IN_REQUIRED)
    return None


async def _comment_or_404(request: Request) -> Comment:
    state = state_of(request)
    comment = await state.comments.get(request.path_params["id"])
    if comment is None:
        raise NotFound(f"There is no comment {request.path_params['id']}.")
    return comment


@documented(
    Operation(
        summary="Edit a comment's text: its edit token within the window, or staff",
        body=EditComment,
        responses={
            200: Edited,
            400: Error,
            401: Error,
            403: Error,
            404: Error,
            413: Error,
            415: Error,
            422: Error,
            503: Error,
        },
        extra={"security": [{"bearer": []}, {"session": []}]},
    )
)
async def edit_comment(request: Request) -> Response:
    state = state_of(request)
    comment = await _comment_or_404(request)
    staff = await authorise_edit(request, comment)
    held = comment.status == Status.PENDING or (
        comment.status == Status.SPAM and comment.reason == BANNED
    )
    if comment.status != Status.APPROVED and not held:
        # A banned commenter edits their comment as if it were held (no oracle).
        raise NotFound(f"There is no comment {comment.id}.")
    text = validate_text(await read_json(request))
    updated = await state.discussion.edit(comment.id, text, by=staff)
    await _audit(request, staff, "edit", f"comment {comment.id}")
    return json_response({"comment": own_comment(updated)})


@documented(
    Operation(
        summary="Delete a comment: its edit token within the window, or staff",
        responses={204: None, 401: Error, 403: Error, 404: Error, 503: Error},
        extra={"security": [{"bearer": []}, {"session": []}]},
    )
)
async def delete_comment(request: Request) -> Response:
    state = state_of(request)
    comment = await _comment_or_404(request)
    staff = await authorise_edit(request, comment)
    if comment.status == Status.DELETED:
        return Response(status_code=204)
    if staff is not None:
        # As moderation, so open queues drop it and the audit log records who did it.
        await state.discussion.moderate(comment.id, Action.DELETE, staff)
    else:
        await state.discussion.remove(comment.id)
    return Response(status_code=204)


@documented(
    Operation(
        summary="Approve, mark as spam or delete a comment",
        description=STAFF_ONLY,
        staff=True,
        tags=("moderation",),
        params=(
            Param("action", {"enum": ["approve", "spam", "delete"]}, "What to do.", where="path"),
            VERSION,
        ),
        responses={
            200: Moderated,
            401: Error,
            403: Error,
            404: Error,
            409: Error,
            422: Error,
            503: Error,
        },
    )
)
async def moderate(request: Request) -> Response:
    state = state_of(request)
    staff = await require_staff(request)
    action = parse_action(request.path_params["action"], API_ACTIONS)
    if action is None:
        raise NotFound(f"Actions are {', '.join(API_ACTIONS[:-1])} and {API_ACTIONS[-1]}.")
    comment = await state.discussion.moderate(
        request.path_params["id"], action, staff, version=await _seen_version(request)
    )
    return json_response({"comment": staff_comment(comment)})


async def _seen_version(request: Request) -> int | None:
    """The comment version the moderator saw: ``?version=N`` or ``{"version": N}``; None
    (act on whatever is current) when not given. A stale one makes the action a 409.

    Read through the integer boundary (values.parse_int): no float, bool, exponent, Unicode
    digit or 400-digit number gets past it, in the query or in the body."""
    value: Any = request.query_params.get("version")
    if value is None and request.headers.get("content-type", "").startswith("application/json"):
        value = (await read_json(request)).get("version")
    if value is None:
        return None
    try:
        return values.parse_int(value, "version", low=1, high=MAX_VERSION)
    except InvalidInput:
        raise ValidationFailed(
            fields={"version": "A comment version: a whole number from 1."}
        ) from None


@documented(
    Operation(
        summary="Comments by status (pending by default), newest first, at most 200",
        description=STAFF_ONLY,
        staff=True,
        tags=("moderation",),
        params=(
            Param(
                "status",
                {"enum": ["pending", "approved", "spam", "deleted"]},
                "Which comments (default pending).",
            ),
        ),
        responses={200: Queue, 400: Error, 401: Error, 403: Error, 503: Error},
    )
)
async def moderation_queue(request: Request) -> Response:
    state = state_of(request)
    await require_staff(request)
    status = request.query_params.get("status", Status.PENDING)
    if status not in tuple(Status):
        raise BadRequest(
            "status is one of " + ", ".join(Status) + ".",
            fields={"status": "Unknown status."},
        )
    # One query: each comment comes with its thread's uri (no lookup per thread).
    found = await ModerationStore(state.db).search(status, limit=200)
    return json_response(
        {"status": status, "comments": [staff_comment(c, uri) for c, uri in found]}
    )


@documented(
    Operation(
        summary="Approved comment counts for up to 100 threads",
        params=(
            Param(
                "uri",
                {"type": "string"},
                "A page's path or URL; repeat for more (at most 100).",
                required=True,
                many=True,
            ),
        ),
        responses={200: Counts, 400: Error, 503: Error},
    )
)
async def counts(request: Request) -> Response:
    state = state_of(request)
    query: bytes = request.scope["query_string"]
    question = state.count_questions.get(query)
    if question is None:  # checked once per distinct query string, then remembered
        raw = request.query_params.getlist("uri")
        if not raw:
            raise BadRequest("Give one or more ?uri= parameters.")
        if len(raw) > MAX_COUNT_URIS:
            raise BadRequest(f"Ask for at most {MAX_COUNT_URIS} uris at once.")
        question = state.count_questions.put(query, {u: query_uri(u) for u in raw})
    version, body = await state.counts.answer(state.comments, question)
    replay.allow(
        request,
        version,
        lambda: state.counts.version(state.comments, question),
        mark=state.change_mark,
    )
    return Response(body, media_type="application/json")


@documented(
    Operation(
        summary="What the widget needs to know: mail, live channel, language, limits",
        tags=("meta",),
        responses={200: Config},
    )
)
async def config(request: Request) -> Response:
    state = state_of(request)
    settings = state.settings
    return json_response(
        {
            "notify": state.mail is not None,  # offer "notify me of replies" (mail is on)
            "live_url": state.live_url,
            "language": settings.language,
            "edit_window": settings.edit_window,
            "moderation": settings.moderation,
            "max_depth": settings.max_depth,
            "follow_author_links": settings.follow_author_links,
            "page_size": settings.page_size,
            "votes": settings.votes,
            "sso": settings.sso_secret is not None,
            "sso_only": settings.sso_only,
            "sso_login_url": settings.sso_login_url,
            # Whether the asking page may embed the widget; it shows a clear refusal otherwise.
            "origin_allowed": origins.allowed(settings, request, request.headers.get("origin")),
        }
    )


routes = [
    Route("/api/comments", read_comments, methods=["GET"]),
    Route("/api/comments", post_comment, methods=["POST"]),
    Route("/api/comments/{id:int}", edit_comment, methods=["PATCH"]),
    Route("/api/comments/{id:int}", delete_comment, methods=["DELETE"]),
    Route("/api/comments/{id:int}/{action:str}", moderate, methods=["POST"]),
    Route("/api/moderation", moderation_queue, methods=["GET"]),
    Route("/api/counts", counts, methods=["GET"]),
    Route("/api/config", config, methods=["GET"]),
]
