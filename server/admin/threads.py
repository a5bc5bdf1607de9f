"""Big threads in the admin: the threads list with close/open, pins from the comment lists
and from the post page (its staff controls post here too).

Each action goes through :class:`server.discussion.threads.Threads`, so readers get their
events exactly as through the JSON API, and each is written to the audit log.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from db.models import StaffMember
from server.admin.guard import Form, first, render, staff_page
from server.discussion.uris import normalise_uri
from server.errors import BadRequest, NotFound
from server.i18n import N_
from server.state import state_of

PAGE_SIZE = 100
BACKS = ("/admin/queue", "/admin/comments/approved", "/admin/threads")


def _back(form: Form) -> str:
    back = first(form, "back", "/admin/threads")
    return back if back in BACKS else "/admin/threads"


@staff_page()
async def threads_page(request: Request, member: StaffMember, form: Form) -> Response:
    """Every thread with its approved comments, votes, pins and whether it is closed."""
    state = state_of(request)
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        page = 1
    found = await state.threads.store.listing(limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return render(
        request,
        "admin/threads.html",
        member,
        {
            "threads": found[:PAGE_SIZE],
            "more": len(found) > PAGE_SIZE,
            "page": page,
            "counts": await state.moderation.counts(),
            "notice": request.query_params.get("notice"),
        },
    )


@staff_page()
async def close_or_open(request: Request, member: StaffMember, form: Form) -> Response:
    state = state_of(request)
    action = first(form, "action")
    if action not in ("close", "open"):
        raise BadRequest(N_("The actions are close and open."))
    thread = await state.comments.thread(normalise_uri(first(form, "uri")))
    if thread is None:
        raise NotFound(N_("There is no thread at that uri."))
    await state.threads.set_closed(thread, action == "close")
    await state.audit.record(member.id, member.name, action, f"thread {thread.uri}", None)
    return RedirectResponse(f"{_back(form)}?notice={action}", status_code=303)


@staff_page()
async def pin(request: Request, member: StaffMember, form: Form) -> Response:
    state = state_of(request)
    action = first(form, "action")
    if action not in ("pin", "unpin"):
        raise BadRequest(N_("The actions are pin and unpin."))
    comment = await state.threads.set_pinned(int(request.path_params["id"]), action == "pin")
    await state.audit.record(member.id, member.name, action, f"comment {comment.id}", None)
    if first(form, "back") == "comment":  # from the post page: back to the comment, on its page
        return RedirectResponse(f"/c/{comment.id}", status_code=303)
    return RedirectResponse(f"{_back(form)}?notice={action}", status_code=303)


routes = [
    Route("/admin/threads", threads_page, methods=["GET"]),
    Route("/admin/threads", close_or_open, methods=["POST"]),
    Route("/admin/comments/{id:int}/pin", pin, methods=["POST"]),
]
