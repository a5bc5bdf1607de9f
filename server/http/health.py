"""``/healthz``: 200 while the database answers; says how the optional parts are doing."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from db.errors import DatabaseError
from server.http.models import Health
from server.http.openapi import Operation, documented
from server.state import state_of

PING_TIMEOUT = 2.0  # a database that does not answer within this is down, as far as we know


@documented(
    Operation(
        summary="200 while the database answers, 503 when it does not",
        tags=("meta",),
        responses={200: Health, 503: Health},
    )
)
async def healthz(request: Request) -> JSONResponse:
    state = state_of(request)
    body: dict[str, object] = {"status": "ok", "database": "ok"}
    status = 200
    try:
        await asyncio.wait_for(state.db.ping(), PING_TIMEOUT)
    except (DatabaseError, TimeoutError) as exc:
        body.update(status="unavailable", database=str(exc) or "no answer in time")
        status = 503
    for name, check in state.health.items():
        body[name] = await check()
    return JSONResponse(body, status_code=status)


routes = [Route("/healthz", healthz)]
