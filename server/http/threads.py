"""Big threads over HTTP: pages of a thread, votes, pins, closing (the routes of issue 17).

``GET /api/comments`` with ``sort``, ``limit`` or ``after`` comes here from
:func:`server.http.api.read_comments`; without them it reads the whole thread as before.
"""

from __future__ import annotations

from collections.abc import Hashable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db.models import StaffMember, Thread
from server.auth.identity import require_staff
from server.discussion.paging import SORTS, BadCursor, parse_limit
from server.discussion.shapes import public_comment, staff_comment
from server.errors import BadRequest, NotFound
from server.http import replay
from server.http.bodies import encode_json, json_response, read_json
from server.http.clients import client_address
from server.http.models import Error, Moderated, NewVote, Tally, ThreadState, Voter
from server.http.openapi import STAFF_ONLY, Operation, Param, documented
from server.http.params import required_uri
from server.i18n import N_
from server.state import state_of

BAD_CURSOR = N_("This page cursor was not issued for this thread and order; start from page 1.")


MAX_ID = 2**63 - 1  # both engines' BIGINT: a larger id names no comment (never a 500)


def _comment_id(request: Request) -> int:
    comment_id = int(request.path_params["id"])
    if comment_id > MAX_ID:
        raise NotFound(f"There is no comment {comment_id}.")
    return comment_id


def page_params(request: Request) -> tuple[str, int | None, str | None]:
    """``sort``, ``limit`` and ``after`` from the query, each checked (400 with the field)."""
    params = request.query_params
    sort = params.get("sort", "oldest")
    if sort not in SORTS:
        raise BadRequest(
            N_("sort is one of oldest, newest, best."), fields={"sort": N_("Unknown order.")}
        )
    try:
        limit = parse_limit(params.get("limit"))
    except ValueError:
        raise BadRequest(
            N_("limit is a whole number from 1 to 200."),
            fields={"limit": N_("A whole number from 1 to 200.")},
        ) from None
    after = params.get("after")
    if after is not None and (not after or len(after) > 500):
        raise BadRequest(BAD_CURSOR, fields={"after": BAD_CURSOR})
    return sort, limit, after


async def read_page(request: Request, uri: str) -> Response:
    """One keyset page of top-level comments with their replies, pinned first."""
    state = state_of(request)
    sort, limit, after = page_params(request)
    thread = await state.comments.thread(uri)
    empty = {
        "uri": uri,
        "count": 0,
        "cursor": 0,
        "top_level": 0,
        "next": None,
        "closed": False,
        "sort": sort,
        "comments": [],
    }
    if thread is None:
        if after is not None:  # no thread issued this cursor
            raise BadRequest(BAD_CURSOR, fields={"after": BAD_CURSOR})
        return json_response(empty)
    # As the post page's comment list (server/http/pages.py): one body per visible state of
    # the thread and page, so the first page of a busy thread costs one indexed read. A cursor
    # is only ever cached after it was read and found valid for this thread and order.
    version = state.thread_version(thread)
    key = (version, sort, limit, after)

    async def version_now() -> Hashable:
        now = await state.comments.thread(uri)
        return None if now is None else state.thread_version(now)

    cached = state.page_bodies.get(key)
    if cached is not None:
        replay.allow(request, version, version_now, mark=state.change_mark)
        return Response(cached, media_type="application/json")
    try:
        found = await state.pager.page(thread, sort, limit, after)
    except BadCursor:
        raise BadRequest(BAD_CURSOR, fields={"after": BAD_CURSOR}) from None
    if found is None:
        return json_response(empty)
    index, page, comments = found
    body = encode_json(
        {
            "uri": thread.uri,
            "count": page.count,
            "cursor": index.last_seq,
            "top_level": page.top_level,
            "next": state.pager.next_token(thread.id, sort, page),
            "closed": index.closed,
            "sort": sort,
            "comments": [public_comment(c, page.states[c.id]) for c in comments],
        }
    )
    if index.version == thread.version and index.closed == thread.closed:
        state.page_bodies.put(key, body)  # read at the state the key names: exact
        replay.allow(request, version, version_now, mark=state.change_mark)
    return Response(body, media_type="application/json")


# -- closing -------------------------------------------------------------------------------------


async def _thread_param(request: Request) -> Thread:
    # Through the one reading of ?uri= (a malformed one is a 400, never a 500).
    thread = await state_of(request).comments.thread(required_uri(request.query_params))
    if thread is None:
        raise NotFound(N_("There is no thread at that uri."))
    return thread


async def _audit(staff: StaffMember, request: Request, action: str, target: str) -> None:
    await state_of(request).audit.record(staff.id, staff.name, action, target, None)


STAFF_ANSWERS = {401: Error, 403: Error, 404: Error, 503: Error}


@documented(
    Operation(
        summary="Close a thread to new comments (/close) or open it again (/open)",
        description=STAFF_ONLY,
        staff=True,
        tags=("threads",),
        params=(
            Param(
                "uri",
                {"type": "string", "minLength": 1},
                "The thread's page path or URL.",
                required=True,
            ),
        ),
        responses={200: ThreadState, 400: Error, **STAFF_ANSWERS},
    )
)
async def close_thread(request: Request) -> Response:
    staff = await require_staff(request)
    thread = await _thread_param(request)
    closed = request.url.path.endswith("/close")
    await state_of(request).threads.set_closed(thread, closed)
    await _audit(staff, request, "close" if closed else "open", f"thread {thread.uri}")
    return json_response({"uri": thread.uri, "closed": closed})


# -- pins -------------------------------------------------------------------------------------


@documented(
    Operation(
        summary="Pin an approved top-level comment first in every order (/pin), or unpin it",
        description=STAFF_ONLY,
        staff=True,
        tags=("threads",),
        responses={200: Moderated, 422: Error, **STAFF_ANSWERS},
    )
)
async def pin_comment(request: Request) -> Response:
    staff = await require_staff(request)
    pinned = request.url.path.endswith("/pin")
    comment = await state_of(request).threads.set_pinned(_comment_id(request), pinned)
    await _audit(staff, request, "pin" if pinned else "unpin", f"comment {comment.id}")
    return json_response({"comment": staff_comment(comment)})


# -- votes ------------------------------------------------------------------------------------


@documented(
    Operation(
        summary="A signed anonymous voter id for this browser to keep",
        tags=("votes",),
        description="403 while voting is off; rate limited per client address.",
        responses={201: Voter, 403: Error, 429: Error, 503: Error},
        headers={429: {"Retry-After": "Seconds to wait."}},
    )
)
async def new_voter(request: Request) -> Response:
    state = state_of(request)
    address = client_address(request, state.settings.trusted_proxies)
    return json_response({"voter": await state.votes.new_voter(address)}, status=201)


@documented(
    Operation(
        summary="Vote on a comment readers can see: 1, -1 or 0 to withdraw",
        tags=("votes",),
        body=NewVote,
        description="As a voter from POST /api/voters or an SSO user (a missing or forged "
        "one is 401). With KIBITZ_VOTES=up, -1 is 422; with off, 403.",
        responses={
            200: Tally,
            400: Error,
            401: Error,
            403: Error,
            404: Error,
            413: Error,
            415: Error,
            422: Error,
            429: Error,
            503: Error,
        },
        headers={429: {"Retry-After": "Seconds to wait."}},
    )
)
async def vote(request: Request) -> Response:
    state = state_of(request)
    state.votes.check_enabled()
    data = await read_json(request)
    address = client_address(request, state.settings.trusted_proxies)
    tally = await state.votes.vote(_comment_id(request), data, address)
    return json_response(
        {"id": tally.comment_id, "up": tally.up, "down": tally.down, "mine": tally.mine}
    )


routes = [
    Route("/api/threads/close", close_thread, methods=["POST"]),
    Route("/api/threads/open", close_thread, methods=["POST"]),
    Route("/api/comments/{id:int}/pin", pin_comment, methods=["POST"]),
    Route("/api/comments/{id:int}/unpin", pin_comment, methods=["POST"]),
    Route("/api/comments/{id:int}/vote", vote, methods=["POST"]),
    Route("/api/voters", new_voter, methods=["POST"]),
]
