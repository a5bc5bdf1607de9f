"""Who is asking: staff (an API token or the admin session) or a commenter's edit token.

The one place that answers "may this request act as staff?" and "may it edit this comment?",
for the JSON API, the pages and both live transports alike.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import HTTPConnection

from db.models import Comment, StaffMember, Status, now
from server.auth.credentials import bearer, is_api_token
from server.discussion.bans import BANNED
from server.errors import Forbidden, NotFound, Unauthorized
from server.i18n import N_
from server.state import state_of


async def current_staff(conn: HTTPConnection) -> StaffMember | None:
    """Staff behind this request: an API token, else the admin session cookie."""
    state = state_of(conn)
    token = bearer(conn)
    if token and is_api_token(token):
        return await state.staff.by_token(token)
    return await state.sessions.staff(conn)


async def require_staff(conn: HTTPConnection) -> StaffMember:
    member = await current_staff(conn)
    if member is None:
        raise Unauthorized()
    return member


async def authorise_edit(conn: HTTPConnection, comment: Comment) -> StaffMember | None:
    """Staff (returned), or the commenter holding this comment's edit token inside the window.

    The window is checked twice: by the token's signed timestamp and by the comment's own
    date, so a token can never outlive the window of the comment it names. A comment readers
    cannot see and its author cannot edit any more is not found.
    """
    state = state_of(conn)
    staff = await current_staff(conn)
    if staff is not None:
        return staff
    state.edit_tokens.check(bearer(conn), comment.id)
    if now() - comment.created > timedelta(seconds=state.settings.edit_window):
        raise Forbidden(N_("The time to edit or delete this comment has passed."))
    # A banned commenter's comment (kept as spam) answers as a held one would: no oracle.
    banned = comment.status == Status.SPAM and comment.reason == BANNED
    if comment.status not in (Status.APPROVED, Status.PENDING) and not banned:
        raise NotFound(f"There is no comment {comment.id}.")
    return None
