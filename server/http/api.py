"""The JSON API under ``/api``: what the post pages' script, the widget and operators use."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db.comments import visible_states
from db.models import Comment, StaffMember, Status
from db.moderation import ModerationStore
from server.auth import sso
from server.auth.identity import authorise_edit, current_staff, require_staff
from server.discussion.bans import BANNED
from server.discussion.errors import InvalidInput
from server.discussion.moderation import API_ACTIONS, Action, parse_action
from server.discussion.shapes import APPROVED, own_comment, public_comment, staff_comment
from server.discussion.uris import normalise_uri
from server.discussion.validation import validate_comment, validate_text
from server.errors import BadRequest, Forbidden, NotFound, ValidationFailed
from server.http import origins, threads
from server.http.bodies import read_json
from server.http.clients import client_address
from server.http.params import required_uri
from server.state import state_of

MAX_COUNT_URIS = 100


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def _audit(
    request: Request, staff: StaffMember | None, action: str, target: str, detail: str | None = None
) -> None:
    """Record a staff action in the audit log."""
    if staff is not None:
        await state_of(request).audit.record(staff.id, staff.name, action, target, detail)


async def read_comments(request: Request) -> Response:
    state = state_of(request)
    uri = required_uri(request.query_params)
    if any(name in request.query_params for name in ("sort", "limit", "after")):
        return await threads.read_page(request, uri)  # keyset pages (big threads)
    thread, cursor = await state.comments.cursor(uri)
    if thread is None:
        return _json(
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
        cached = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        if snapshot == cursor:
            state.cache.put(thread.id, version, cached)
    return Response(cached, media_type="application/json")


async def post_comment(request: Request) -> Response:
    state = state_of(request)
    origin = request.headers.get("origin")
    if not origins.allowed(state.settings, request, origin):
        raise Forbidden(
            "This site is not allowed to post comments here "
            "(add its origin to KIBITZ_ALLOWED_ORIGINS)."
        )
    data = await read_json(request)
    staff = await current_staff(request)
    raw_uri = data.get("uri")
    if not isinstance(raw_uri, str) or not raw_uri.strip():
        fields = {"uri": "Give the page's path, such as /2010/07/social-media/."}
        try:
            validate_comment(data)
        except InvalidInput as exc:  # report every field at once
            fields.update(exc.fields)
        raise InvalidInput(fields=fields)
    uri = normalise_uri(raw_uri)
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
        raise
    is_post = await state.posts.exists_for_uri(uri)
    may_create = is_post or (origin is not None) or staff is not None
    title = data.get("title") if isinstance(data.get("title"), str) else None
    comment = await state.discussion.submit(
        uri,
        entry,
        address=client_address(request, state.settings.trusted_proxies),
        staff=staff,
        may_create_thread=may_create,
        title=(title or "")[:300] or None,
        sso_sub=signed_in.sub if signed_in else None,
    )
    await _audit(request, staff, "post", f"comment {comment.id}", uri)
    if data.get("notify") is True and state.mail is not None:
        await state.mail.subscribe(comment)  # reply mail, after a confirmation mail
    return _json(
        {"comment": own_comment(comment), "edit_token": state.edit_tokens.issue(comment.id)},
        status=201,
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
    return _json({"comment": own_comment(updated)})


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


async def moderate(request: Request) -> Response:
    state = state_of(request)
    staff = await require_staff(request)
    action = parse_action(request.path_params["action"], API_ACTIONS)
    if action is None:
        raise NotFound(f"Actions are {', '.join(API_ACTIONS[:-1])} and {API_ACTIONS[-1]}.")
    comment = await state.discussion.moderate(
        request.path_params["id"], action, staff, version=await _seen_version(request)
    )
    return _json({"comment": staff_comment(comment)})


async def _seen_version(request: Request) -> int | None:
    """The comment version the moderator saw: ``?version=N`` or ``{"version": N}``; None
    (act on whatever is current) when not given. A stale one makes the action a 409."""
    value: Any = request.query_params.get("version")
    if value is None and request.headers.get("content-type", "").startswith("application/json"):
        value = (await read_json(request)).get("version")
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 9:
        value = int(value)
    if type(value) is not int or not 1 <= value < 2**31:
        raise ValidationFailed(fields={"version": "A comment version: a whole number from 1."})
    return value


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
    return _json({"status": status, "comments": [staff_comment(c, uri) for c, uri in found]})


async def counts(request: Request) -> Response:
    state = state_of(request)
    raw = request.query_params.getlist("uri")
    if not raw:
        raise BadRequest("Give one or more ?uri= parameters.")
    if len(raw) > MAX_COUNT_URIS:
        raise BadRequest(f"Ask for at most {MAX_COUNT_URIS} uris at once.")
    normalised = {u: normalise_uri(u) for u in raw}
    found = await state.counts.counts(state.comments, sorted(set(normalised.values())))
    return _json({u: found.get(n, 0) for u, n in normalised.items()})


async def config(request: Request) -> Response:
    state = state_of(request)
    settings = state.settings
    return _json(
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
