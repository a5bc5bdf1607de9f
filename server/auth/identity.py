"""Who is asking: staff (an API token or the admin session) or a commenter's edit token.

The one place that answers "may this request act as staff?" and "may it edit this comment?",
for the JSON API, the pages and both live transports alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from starlette.requests import HTTPConnection

from db.models import Comment, StaffMember, Status, now
from server.auth.credentials import bearer, is_api_token
from server.discussion.bans import BANNED
from server.errors import Forbidden, NotFound, Unauthorized
from server.i18n import N_
from server.state import State, state_of


async def current_staff(conn: HTTPConnection) -> StaffMember | None:
    """Staff behind this request: an API token, else the admin session cookie."""
    state = state_of(conn)
    token = bearer(conn)
    if token and is_api_token(token):
        return await state.staff.by_token(token)
    return await state.sessions.staff(conn)


@dataclass(frozen=True)
class StaffCredential:
    """What let a long-lived connection in as staff, kept so it can be checked again.

    A moderation socket outlives the request that opened it; it re-checks this (on a timer
    and when told to) and closes once the account is disabled, the token revoked or the
    session ended.
    """

    member: StaffMember
    kind: str  # "token" or "session"
    secret: str  # the API token or session cookie as sent; only its hash is stored

    async def valid(self, state: State) -> bool:
        if self.kind == "token":
            found = await state.staff.by_token(self.secret)
            return found is not None and found.id == self.member.id
        session = await state.sessions.store.get(self.secret)
        return session is not None and session.staff.id == self.member.id


async def staff_credential(conn: HTTPConnection) -> StaffCredential | None:
    """The staff credential behind this request (as :func:`current_staff` finds it)."""
    state = state_of(conn)
    token = bearer(conn)
    if token and is_api_token(token):
        member = await state.staff.by_token(token)
        return StaffCredential(member, "token", token) if member else None
    member = await state.sessions.staff(conn)
    cookie = conn.cookies.get(state.sessions.cookie)
    if member is None or not cookie:
        return None
    return StaffCredential(member, "session", cookie)


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
