"""``/api/bans`` (staff only): ban a commenter, list the bans, lift one.

Every change is written to the audit log. The ban itself lives in the database, so it holds
on every process from the moment the answer is sent.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.auth.identity import require_staff
from server.discussion.bans import ban_shape, parse_ban
from server.errors import NotFound
from server.http.bodies import json_response, read_json
from server.http.models import Ban, Bans, Error, NewBan
from server.http.openapi import STAFF_ONLY, Operation, documented
from server.state import state_of


@documented(
    Operation(
        summary="Ban a commenter by e-mail, address or network, SSO user id or name",
        description=STAFF_ONLY,
        staff=True,
        tags=("bans",),
        body=NewBan,
        responses={
            201: Ban,
            400: Error,
            401: Error,
            403: Error,
            413: Error,
            415: Error,
            422: Error,
            503: Error,
        },
    )
)
async def create_ban(request: Request) -> Response:
    staff = await require_staff(request)
    state = state_of(request)
    new = parse_ban(await read_json(request))
    ban = await state.bans.add(new, staff.id, staff.name)
    await state.audit.record(staff.id, staff.name, "ban", f"ban {ban.id}", ban.reason or None)
    return json_response(ban_shape(ban), status=201)


@documented(
    Operation(
        summary="Every ban, lifted and expired ones included",
        description=STAFF_ONLY,
        staff=True,
        tags=("bans",),
        responses={200: Bans, 401: Error, 403: Error, 503: Error},
    )
)
async def list_bans(request: Request) -> Response:
    await require_staff(request)
    bans = await state_of(request).bans.all()
    return json_response({"bans": [ban_shape(b) for b in bans]})


@documented(
    Operation(
        summary="Lift a ban",
        description=STAFF_ONLY,
        staff=True,
        tags=("bans",),
        responses={204: None, 401: Error, 403: Error, 404: Error, 503: Error},
    )
)
async def delete_ban(request: Request) -> Response:
    staff = await require_staff(request)
    state = state_of(request)
    ban_id = request.path_params["id"]
    removed = await state.bans.remove(ban_id)
    if removed is None:
        raise NotFound(f"There is no ban {ban_id}.")
    await state.audit.record(staff.id, staff.name, "unban", f"ban {ban_id}")
    return Response(status_code=204)


routes = [
    Route("/api/bans", create_ban, methods=["POST"]),
    Route("/api/bans", list_bans, methods=["GET"]),
    Route("/api/bans/{id:int}", delete_ban, methods=["DELETE"]),
]
