"""A commenter's own data from the admin: for requests that arrive by letter or e-mail.

Staff look an address up, download its comments as JSON and erase them, exactly as the
commenter could through ``/privacy``; both actions are audited without the address.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from db.models import StaffMember
from server.admin.guard import Form, first, render, staff_page
from server.discussion.validation import MAX_EMAIL, valid_email
from server.errors import ValidationFailed
from server.i18n import N_
from server.privacy import data
from server.state import state_of


def _email(value: str) -> str:
    email = value.strip()
    if not email or len(email) > MAX_EMAIL or not valid_email(email):
        raise ValidationFailed(fields={"email": N_("Please enter a valid e-mail address.")})
    return email


@staff_page()
async def privacy_page(request: Request, member: StaffMember, form: Form) -> Response:
    """Look an address up: every comment written with it, in every status."""
    state = state_of(request)
    email = request.query_params.get("email", "").strip()
    items, error = None, None
    if email:
        try:
            items = await data.comments_of(state, _email(email))
        except ValidationFailed as exc:
            error = exc.fields["email"]
    return render(
        request,
        "admin/privacy.html",
        member,
        {
            "email": email,
            "items": items,
            "error": error,
            "erased": request.query_params.get("erased"),
            "counts": await state.moderation.counts(),
        },
        status_code=422 if error else 200,
    )


@staff_page()
async def privacy_download(request: Request, member: StaffMember, form: Form) -> Response:
    state = state_of(request)
    email = _email(first(form, "email"))
    response = await data.download(state, email)
    await state.audit.record(member.id, member.name, "privacy download", None, None)
    return response


@staff_page()
async def privacy_erase(request: Request, member: StaffMember, form: Form) -> Response:
    count = await data.erase(state_of(request), _email(first(form, "email")), member)
    return RedirectResponse(f"/admin/privacy?erased={count}", status_code=303)


routes = [
    Route("/admin/privacy", privacy_page, methods=["GET"]),
    Route("/admin/privacy/download", privacy_download, methods=["POST"]),
    Route("/admin/privacy/erase", privacy_erase, methods=["POST"]),
]
