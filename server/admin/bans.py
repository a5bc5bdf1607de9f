"""The bans page of the admin, and "ban this author" beside each comment in the queue.

Both roles may ban: stopping a troll must not wait for an admin. Every ban and every lifted
ban is written to the audit log, whichever way it was made (here or ``/api/bans``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from db.models import StaffMember
from server.admin.guard import Form, first, render, staff_page
from server.discussion.bans import KEYS, ban_shape, parse_ban
from server.discussion.errors import InvalidInput
from server.errors import NotFound
from server.i18n import N_
from server.state import state_of

BACK = {"/admin/queue", "/admin/comments/approved", "/admin/comments/spam", "/admin/bans"}


async def _page(
    request: Request,
    member: StaffMember,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    state = state_of(request)
    return render(
        request,
        "admin/bans.html",
        member,
        {
            "bans": [ban_shape(b) for b in await state.bans.all()],
            "values": values or {},
            "errors": errors or {},
            "notice": request.query_params.get("notice"),
            "counts": await state.moderation.counts(),
        },
        status_code=status_code,
    )


@staff_page()
async def bans_page(request: Request, member: StaffMember, form: Form) -> Response:
    """Every ban, live or run out, with a form to add one."""
    return await _page(request, member)


@staff_page()
async def add_ban(request: Request, member: StaffMember, form: Form) -> Response:
    state = state_of(request)
    values = {k: first(form, k) for k in (*KEYS, "reason", "expires")}
    try:
        new = parse_ban(values)
    except InvalidInput as exc:
        return await _page(request, member, values=values, errors=exc.fields, status_code=422)
    ban = await state.bans.add(new, member.id, member.name)
    await state.audit.record(member.id, member.name, "ban", f"ban {ban.id}", ban.reason or None)
    return RedirectResponse("/admin/bans?notice=banned", status_code=303)


@staff_page()
async def lift_ban(request: Request, member: StaffMember, form: Form) -> Response:
    state = state_of(request)
    ban_id = int(request.path_params["id"])
    if await state.bans.remove(ban_id) is None:
        raise NotFound(N_("There is no such ban."))
    await state.audit.record(member.id, member.name, "unban", f"ban {ban_id}")
    return RedirectResponse("/admin/bans?notice=lifted", status_code=303)


@staff_page()
async def ban_author(request: Request, member: StaffMember, form: Form) -> Response:
    """Ban the author of one comment by their e-mail address (and their SSO user id)."""
    state = state_of(request)
    comment_id = int(request.path_params["id"])
    comment = await state.comments.get(comment_id)
    if comment is None:
        raise NotFound(f"There is no comment {comment_id}.")
    values = {
        "email": comment.email,
        "sub": comment.sso_sub or "",
        "reason": first(form, "reason") or f"comment {comment_id}",
    }
    if not comment.email and not comment.sso_sub:
        values["name"] = comment.author  # an imported comment may have no address
    ban = await state.bans.add(parse_ban(values), member.id, member.name)
    await state.audit.record(
        member.id, member.name, "ban", f"ban {ban.id}", f"author of comment {comment_id}"
    )
    back = first(form, "back", "/admin/queue")
    back = back if back in BACK else "/admin/queue"
    return RedirectResponse(f"{back}?notice=banned", status_code=303)


routes = [
    Route("/admin/bans", bans_page, methods=["GET"]),
    Route("/admin/bans", add_ban, methods=["POST"]),
    Route("/admin/bans/{id:int}/delete", lift_ban, methods=["POST"]),
    Route("/admin/comments/{id:int}/ban", ban_author, methods=["POST"]),
]
