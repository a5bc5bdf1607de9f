"""The moderation queue, the lists of approved/spam/deleted comments, and the audit log.

Both roles may use these pages. Actions go through :class:`server.discussion.actions.Discussion`,
so readers get their events and every open queue its ``comment.moderated`` exactly as when
the JSON API is used, and the audit listener records each one.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from db.models import StaffMember, Status
from server.admin.guard import Form, first, live_moderation_url, render, staff_page
from server.discussion.errors import Changed, InvalidInput
from server.discussion.moderation import LIST_ACTIONS, Action, parse_action
from server.discussion.validation import CommentInput, validate_text
from server.errors import BadRequest, NotFound
from server.http.params import ids as selected_ids
from server.http.params import integer
from server.i18n import N_
from server.state import state_of

# The lists beside the queue (pending comments are the queue itself).
LISTS = tuple(s for s in LIST_ACTIONS if s != Status.PENDING)
PAGE_SIZE = 100
# The empty item the queue page carries as a <template> for comments that arrive live.
BLANK = {
    **dict.fromkeys(("id", "author", "email", "website", "address", "reason", "html", "text"), ""),
    "created": None,
    "version": "",
}


async def _list_page(request: Request, member: StaffMember, status: str) -> Response:
    admin = state_of(request)
    query = request.query_params.get("q", "")[:200]
    page = integer(request.query_params.get("page"), minimum=1, maximum=100_000) or 1
    found = await admin.moderation.search(
        status, query, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    host = request.headers.get("host", "")
    return render(
        request,
        "admin/comments.html",
        member,
        {
            "status": status,
            "items": found[:PAGE_SIZE],
            "more": len(found) > PAGE_SIZE,
            "page": page,
            "query": query,
            "counts": await admin.moderation.counts(),
            "live_url": live_moderation_url(request.scope, host)
            if status == Status.PENDING
            else None,
            "notice": request.query_params.get("notice"),
            "blank": BLANK,
        },
    )


@staff_page()
async def queue(request: Request, member: StaffMember, form: Form) -> Response:
    """Held comments, oldest first, with everything needed to decide on them."""
    return await _list_page(request, member, Status.PENDING)


@staff_page()
async def comment_list(request: Request, member: StaffMember, form: Form) -> Response:
    status = request.path_params["status"]
    if status not in LISTS:
        raise NotFound(N_("The lists are approved, spam and deleted."))
    return await _list_page(request, member, status)


@staff_page()
async def moderate(request: Request, member: StaffMember, form: Form) -> Response:
    """Approve, spam, delete or restore the selected comments (one or many)."""
    action = parse_action(first(form, "action"))
    if action is None:
        raise BadRequest(N_("The actions are approve, spam, delete and restore."))
    ids = selected_ids(form.get("ids", []))
    if not ids:
        raise BadRequest(N_("Select at least one comment."))
    discussion = state_of(request).discussion
    changed = False
    for comment_id in ids:
        # The version the page showed: a comment edited since is left alone (and shown anew).
        version = integer(first(form, f"version-{comment_id}"), minimum=0)
        try:
            await discussion.moderate(comment_id, action, member, version=version)
        except Changed:
            changed = True
    back = first(form, "back", "/admin/queue")
    if back not in {"/admin/queue", *(f"/admin/comments/{s}" for s in LISTS)}:
        back = "/admin/queue"
    return RedirectResponse(f"{back}?notice={'changed' if changed else action}", status_code=303)


@staff_page()
async def reply(request: Request, member: StaffMember, form: Form) -> Response:
    """Answer a comment as yourself: a held one is approved first, the reply is published
    at once with the staff badge."""
    state = state_of(request)
    comment_id: int = request.path_params["id"]
    target = await state.comments.get(comment_id)
    if target is None:
        raise NotFound(f"There is no comment {comment_id}.")
    try:
        text = validate_text({"text": first(form, "text")})
    except InvalidInput as exc:
        raise BadRequest(exc.fields.get("text", N_("Write a reply first."))) from None
    if target.status != Status.APPROVED:
        await state.discussion.moderate(comment_id, Action.APPROVE, member)
    entry = CommentInput(
        author=member.name, email=member.email or "", website=None, text=text, parent=comment_id
    )
    uri = await state.comments.uri_of(target.thread_id)
    created = await state.discussion.submit(uri, entry, address=None, staff=member)
    await state_of(request).audit.record(
        member.id, member.name, "reply", f"comment {comment_id}", f"as comment {created.id}"
    )
    return RedirectResponse("/admin/queue?notice=reply", status_code=303)


@staff_page()
async def audit(request: Request, member: StaffMember, form: Form) -> Response:
    """Who did what, when: newest first."""
    entries = await state_of(request).audit.newest(limit=500)
    return render(
        request,
        "admin/audit.html",
        member,
        {"entries": entries, "counts": await state_of(request).moderation.counts()},
    )


routes = [
    Route("/admin/queue", queue, methods=["GET"]),
    Route("/admin/comments/{status:str}", comment_list, methods=["GET"]),
    Route("/admin/moderate", moderate, methods=["POST"]),
    Route("/admin/comments/{id:int}/reply", reply, methods=["POST"]),
    Route("/admin/audit", audit, methods=["GET"]),
]
