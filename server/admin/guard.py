"""The staff admin under ``/admin``: wiring, page guard and security headers.

The pages themselves live beside this module: ``admin_login`` (sign in and out),
``admin_queue`` (moderation queue, lists, audit) and ``admin_staff`` (accounts and tokens,
admins only). Everything here works without JavaScript; ``web/static/admin.js`` adds keyboard
shortcuts, actions without reloads and the live queue.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from db.models import Comment, StaffMember
from server.auth.sessions import SAFE_METHODS
from server.discussion.moderation import Action
from server.errors import BadRequest, Forbidden, UnsupportedMediaType
from server.http.bodies import read_capped
from server.i18n import N_
from server.state import State, state_of

Form = dict[str, list[str]]
_ADMIN_PATH = re.compile(r"/admin(/[\w\-./]*)?(\?[\w\-.=&%+]*)?")
StaffEndpoint = Callable[[Request, StaffMember, Form], Awaitable[Response]]


def record_moderation(state: State) -> None:
    """Audit every moderation decision, whichever route made it.

    Every route that moderates (admin pages, JSON API with a token, mail links) comes through
    :meth:`Discussion.moderate`, so recording in its listener misses none of them.
    """

    async def audit_moderation(old: Comment, new: Comment, by: str) -> None:
        await state.audit.record(
            None,
            by,
            Action.of_change(old.status, new.status),
            f"comment {new.id}",
            f"{old.status} → {new.status}",
        )

    state.discussion.listeners.moderated.append(audit_moderation)


# -- security headers ---------------------------------------------------------------------------


class AdminHeaders:
    """Never framed, a strict CSP and no caching, on every ``/admin`` response (errors too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (
            scope["path"] == "/admin" or scope["path"].startswith("/admin/")
        ):
            await self.app(scope, receive, send)
            return
        policy = content_security_policy(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", policy.encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"cache-control", b"no-store"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def content_security_policy(scope: Scope) -> str:
    """Scripts, styles and connections only from this site (and the live channel's origin)."""
    connect = ["'self'"]
    host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1")
    if host:
        connect += [f"ws://{host}", f"wss://{host}"]
    live = live_moderation_url(scope, host)
    if live and not live.startswith(("ws://" + host + "/", "wss://" + host + "/")):
        connect.append(live.split("/ws", 1)[0])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {' '.join(connect)}; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    )


def live_moderation_url(scope: Scope, host: str) -> str:
    """Where the queue's script opens ``/ws/moderation``.

    Where the live channel is served apart (``State.live_url``), beside its ``/ws``;
    otherwise on the host the browser used, so the session cookie goes with it.
    """
    live = state_of(HTTPConnection(scope)).live_url
    if live.rstrip("/").endswith("/ws"):
        return live.rstrip("/") + "/moderation"
    scheme = "wss" if scope.get("scheme") == "https" else "ws"
    return f"{scheme}://{host}/ws/moderation"


# -- forms and the page guard ---------------------------------------------------------------


async def read_multi_form(request: Request) -> Form:
    """An urlencoded form keeping repeated fields (the queue's selected ``ids``)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not media and request.headers.get("content-length", "0") == "0":
        return {}  # a bare POST (a fetch with only the X-CSRF-Token header)
    if media != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("Send the form as application/x-www-form-urlencoded.")
    try:
        text = (await read_capped(request)).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The form is not UTF-8 text.") from None
    form: Form = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        form.setdefault(name, []).append(value)
    return form


def first(form: Form, name: str, default: str = "") -> str:
    values = form.get(name)
    return values[-1] if values else default


def staff_page(*roles: str) -> Callable[[StaffEndpoint], Callable[[Request], Awaitable[Response]]]:
    """Guard an admin page: a login redirect without a session, 403 for a role not listed,
    and the CSRF token checked on every unsafe request before the endpoint runs."""

    def wrap(endpoint: StaffEndpoint) -> Callable[[Request], Awaitable[Response]]:
        async def page(request: Request) -> Response:
            sessions = state_of(request).sessions
            form: Form = {}
            if request.method not in SAFE_METHODS:
                form = await read_multi_form(request)
                await sessions.check_form(request, {k: v[-1] for k, v in form.items()})
            member = await sessions.staff(request)
            if member is None:
                target = request.url.path if request.method in SAFE_METHODS else "/admin"
                return RedirectResponse(f"/admin/login?next={quote(target)}", status_code=303)
            if roles and member.role not in roles:
                raise Forbidden(N_("Only an admin may manage staff accounts and API tokens."))
            return await endpoint(request, member, form)

        page.__name__ = endpoint.__name__
        page.__doc__ = endpoint.__doc__
        return page

    return wrap


def render(
    request: Request,
    name: str,
    member: StaffMember | None,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    state = state_of(request)
    sessions = state_of(request).sessions
    full = {
        "me": member,
        "csrf_token": sessions.csrf_token(request) if member else None,
        "path": request.url.path,
        **(context or {}),
    }
    response: Response = state.templates.response(
        request, name, full, status_code=status_code, headers=headers
    )
    return response


def safe_next(value: str) -> str:
    """Only a path inside the admin: never another site (``//evil``, ``/\\evil``)."""
    if _ADMIN_PATH.fullmatch(value) and "//" not in value:
        return value
    return "/admin/queue"
