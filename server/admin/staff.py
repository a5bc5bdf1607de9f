"""Staff accounts and API tokens, for admins only (a moderator gets 403 here).

Accounts are disabled rather than deleted, so their comments and audit records keep a name;
disabling ends their sessions and revokes their tokens in the same transaction, and every
process is told to close the member's moderation connections (``Live.staff_changed``). A new API
token is shown once, in the response that created it, and stored only as a hash.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from db.errors import Conflict
from db.models import StaffMember
from server.admin.guard import Form, first, render, staff_page
from server.auth.accounts import account_problems
from server.auth.credentials import hash_password, new_api_token
from server.errors import BadRequest, NotFound
from server.i18n import N_
from server.state import state_of


async def _page(
    request: Request, member: StaffMember, *, status_code: int = 200, **context: object
) -> Response:
    state = state_of(request)
    return render(
        request,
        "admin/staff.html",
        member,
        {
            "accounts": await state.staff.accounts(),
            "tokens": await state.staff.tokens(),
            "counts": await state_of(request).moderation.counts(),
            "notice": request.query_params.get("notice"),
            "values": {},
            "errors": {},
            **context,
        },
        status_code=status_code,
    )


@staff_page("admin")
async def staff_list(request: Request, member: StaffMember, form: Form) -> Response:
    return await _page(request, member)


@staff_page("admin")
async def create_account(request: Request, member: StaffMember, form: Form) -> Response:
    state = state_of(request)
    values = {k: first(form, k).strip() for k in ("name", "email", "role")}
    password = first(form, "password")
    errors = account_problems(values["name"], values["role"], password, values["email"])
    if not errors:
        hashed = await asyncio.to_thread(hash_password, password)
        try:
            created = await state.staff.add(
                values["name"], values["role"], hashed, email=values["email"] or None
            )
        except Conflict:
            errors["name"] = N_("An account with this name exists already.")
        else:
            await state_of(request).audit.record(
                member.id, member.name, "create account", f"staff {created.name}", created.role
            )
            return RedirectResponse("/admin/staff?notice=created", status_code=303)
    return await _page(request, member, status_code=422, values=values, errors=errors)


@staff_page("admin")
async def disable_account(request: Request, member: StaffMember, form: Form) -> Response:
    staff_id: int = request.path_params["id"]
    if staff_id == member.id:
        raise BadRequest(N_("You cannot disable your own account; ask another admin."))
    disabled = await state_of(request).staff.disable(staff_id)
    if disabled is None:
        raise NotFound(N_("There is no active account with that id."))
    await state_of(request).live.staff_changed(disabled.id)
    await state_of(request).audit.record(
        member.id, member.name, "disable account", f"staff {disabled.name}"
    )
    return RedirectResponse("/admin/staff?notice=disabled", status_code=303)


@staff_page("admin")
async def create_token(request: Request, member: StaffMember, form: Form) -> Response:
    """Make a token for an account and show it this once."""
    state = state_of(request)
    owner_name = first(form, "owner").strip()
    label = first(form, "label").strip()[:100] or None
    found = await state.staff.by_name(owner_name)
    if found is None:
        return await _page(
            request,
            member,
            status_code=422,
            errors={"owner": N_("Choose an active staff account.")},
        )
    token = new_api_token()
    token_id = await state.staff.add_token(found[0].id, token, label)
    await state_of(request).audit.record(
        member.id, member.name, "create token", f"token {token_id}", f"for {found[0].name}"
    )
    return await _page(request, member, new_token=token, new_token_owner=found[0].name)


@staff_page("admin")
async def revoke_token(request: Request, member: StaffMember, form: Form) -> Response:
    token_id: int = request.path_params["id"]
    owner = await state_of(request).staff.revoke_token(token_id)
    if owner is None:
        raise NotFound(N_("There is no token in use with that id."))
    await state_of(request).live.staff_changed(owner)
    await state_of(request).audit.record(
        member.id, member.name, "revoke token", f"token {token_id}"
    )
    return RedirectResponse("/admin/staff?notice=revoked", status_code=303)


routes = [
    Route("/admin/staff", staff_list, methods=["GET"]),
    Route("/admin/staff", create_account, methods=["POST"]),
    Route("/admin/staff/{id:int}/disable", disable_account, methods=["POST"]),
    Route("/admin/tokens", create_token, methods=["POST"]),
    Route("/admin/tokens/{id:int}/revoke", revoke_token, methods=["POST"]),
]
