"""The admin's webhook page: endpoints, their queues with the last error, a test button.

A new endpoint's secret is shown once, on the page that answers its creation; the same
rules as the JSON API apply (:func:`server.webhooks.service.validate_endpoint`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from db.models import StaffMember
from server.admin.guard import Form, first, render, staff_page
from server.errors import ValidationFailed
from server.state import state_of
from server.webhooks.events import EVENTS


async def _page(
    request: Request, member: StaffMember, *, status_code: int = 200, **context: object
) -> Response:
    state = state_of(request)
    return render(
        request,
        "admin/webhooks.html",
        member,
        {
            "endpoints": await state.webhooks.store.endpoints(),
            "statuses": await state.webhooks.store.statuses(),
            "events": EVENTS,
            "counts": await state.moderation.counts(),
            "notice": request.query_params.get("notice"),
            "values": {},
            "errors": {},
            **context,
        },
        status_code=status_code,
    )


@staff_page()
async def webhook_list(request: Request, member: StaffMember, form: Form) -> Response:
    return await _page(request, member)


@staff_page()
async def create_webhook(request: Request, member: StaffMember, form: Form) -> Response:
    state = state_of(request)
    values = {
        "url": first(form, "url").strip(),
        "events": [e for e in form.get("events", []) if e],
        "private": first(form, "private") == "on",
    }
    try:
        endpoint, secret = await state.webhooks.create(values)
    except ValidationFailed as exc:
        return await _page(request, member, status_code=422, values=values, errors=exc.fields)
    await state.audit.record(
        member.id, member.name, "create webhook", f"webhook {endpoint.id}", endpoint.url
    )
    return await _page(request, member, new_secret=secret, new_endpoint=endpoint)


@staff_page()
async def delete_webhook(request: Request, member: StaffMember, form: Form) -> Response:
    endpoint_id = int(request.path_params["id"])
    await state_of(request).webhooks.delete(endpoint_id)
    await state_of(request).audit.record(
        member.id, member.name, "delete webhook", f"webhook {endpoint_id}"
    )
    return RedirectResponse("/admin/webhooks?notice=deleted", status_code=303)


@staff_page()
async def test_webhook(request: Request, member: StaffMember, form: Form) -> Response:
    await state_of(request).webhooks.send_test(int(request.path_params["id"]))
    return RedirectResponse("/admin/webhooks?notice=test", status_code=303)


routes = [
    Route("/admin/webhooks", webhook_list, methods=["GET"]),
    Route("/admin/webhooks", create_webhook, methods=["POST"]),
    Route("/admin/webhooks/{id:int}/delete", delete_webhook, methods=["POST"]),
    Route("/admin/webhooks/{id:int}/test", test_webhook, methods=["POST"]),
]
