"""``/api/webhooks``: staff manage webhook endpoints (401 without credentials).

The secret is in the answer that created the endpoint and nowhere else, ever.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.auth.identity import require_staff
from server.http.bodies import json_response, read_json
from server.http.models import Error, NewWebhook, Webhook, Webhooks
from server.http.openapi import STAFF_ONLY, STAFF_REFUSALS, Operation, documented
from server.state import state_of
from server.webhooks.service import endpoint_json


@documented(
    Operation(
        summary="Add a webhook endpoint; the answer carries its signing secret, this once",
        description=STAFF_ONLY,
        staff=True,
        tags=("webhooks",),
        body=NewWebhook,
        responses={201: Webhook, 400: Error, 413: Error, 415: Error, 422: Error, **STAFF_REFUSALS},
    )
)
async def create_webhook(request: Request) -> Response:
    state = state_of(request)
    staff = await require_staff(request)
    endpoint, secret = await state.webhooks.create(await read_json(request))
    await state.audit.record(
        staff.id, staff.name, "create webhook", f"webhook {endpoint.id}", endpoint.url
    )
    return json_response(endpoint_json(endpoint, secret), 201)


@documented(
    Operation(
        summary="Every webhook endpoint with its delivery counts (never the secret)",
        description=STAFF_ONLY,
        staff=True,
        tags=("webhooks",),
        responses={200: Webhooks, **STAFF_REFUSALS},
    )
)
async def list_webhooks(request: Request) -> Response:
    state = state_of(request)
    await require_staff(request)
    statuses = await state.webhooks.store.statuses()
    shaped = []
    for endpoint in await state.webhooks.store.endpoints():
        status = statuses.get(endpoint.id)
        shaped.append(
            {
                **endpoint_json(endpoint),
                "waiting": status.waiting if status else 0,
                "delivered": status.delivered if status else 0,
                "failed": status.failed if status else 0,
                "last_error": status.last_error if status else None,
            }
        )
    return json_response({"webhooks": shaped})


@documented(
    Operation(
        summary="Remove a webhook endpoint and its queued deliveries",
        description=STAFF_ONLY,
        staff=True,
        tags=("webhooks",),
        responses={204: None, 404: Error, **STAFF_REFUSALS},
    )
)
async def delete_webhook(request: Request) -> Response:
    state = state_of(request)
    staff = await require_staff(request)
    endpoint_id = request.path_params["id"]
    await state.webhooks.delete(endpoint_id)
    await state.audit.record(staff.id, staff.name, "delete webhook", f"webhook {endpoint_id}")
    return Response(status_code=204)


@documented(
    Operation(
        summary="Queue a webhook.test message for one endpoint",
        description=STAFF_ONLY,
        staff=True,
        tags=("webhooks",),
        responses={202: None, 404: Error, **STAFF_REFUSALS},
    )
)
async def test_webhook(request: Request) -> Response:
    """Queue a ``webhook.test`` message for one endpoint (the admin's button does the same)."""
    state = state_of(request)
    await require_staff(request)
    await state.webhooks.send_test(request.path_params["id"])
    return Response(status_code=202)


routes = [
    Route("/api/webhooks", create_webhook, methods=["POST"]),
    Route("/api/webhooks", list_webhooks, methods=["GET"]),
    Route("/api/webhooks/{id:int}", delete_webhook, methods=["DELETE"]),
    Route("/api/webhooks/{id:int}/test", test_webhook, methods=["POST"]),
]
