"""Signing staff in and out of ``/admin``.

A wrong password and an unknown name get the same answer in the same time: an unknown name
is verified against a dummy argon2 hash (:func:`server.auth.credentials.verify_password`).
Attempts are rate limited per client address, and per account from one address, before any
hash is computed; nobody elsewhere can lock the owner of an account out.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from server.admin.guard import first, read_multi_form, render, safe_next
from server.auth.credentials import verify_password
from server.discussion.errors import Limited
from server.errors import Forbidden
from server.http import origins
from server.http.clients import address_key, client_address
from server.i18n import N_
from server.state import state_of

log = logging.getLogger("kibitz.admin")

WRONG = N_("The name or the password is wrong.")


async def admin_home(request: Request) -> Response:
    return RedirectResponse("/admin/queue", status_code=303)


async def login_page(request: Request) -> Response:
    member = await state_of(request).sessions.staff(request)
    target = safe_next(request.query_params.get("next", ""))
    if member is not None:
        return RedirectResponse(target, status_code=303)
    return render(request, "admin/login.html", None, {"next": target, "name": ""})


def _account_key(name: str, address: str | None) -> str:
    return f"{name.lower()}@{address_key(address)}"


async def _limit(request: Request, name: str, address: str | None) -> None:
    """Count an attempt per client address (one address trying many accounts) and per
    account *from that address* (guessing one password). Staff names are public on their
    comments: a limit per account alone would let anyone lock the owner out from afar."""
    state = state_of(request)
    try:
        await state.login_per_address.hit(address_key(address), "login-address")
        await state.login_per_account.hit(_account_key(name, address), "login-account")
    except Limited:
        raise
    except Exception:
        # The limit store (Redis) is down: staff must still be able to sign in.
        log.warning("login rate limit store unavailable; attempt for %r not limited", name)


async def login(request: Request) -> Response:
    """Check the password; on success open a session and go where the staff member wanted."""
    state = state_of(request)
    origin = request.headers.get("origin")
    if origin is not None and not origins.allowed_own(state.settings, request, origin):
        raise Forbidden(N_("Sign in from this site's own login page."))
    form = await read_multi_form(request)
    name, password = first(form, "name").strip(), first(form, "password")
    target = safe_next(first(form, "next"))
    context = {"next": target, "name": name}
    address = client_address(request, state.settings.trusted_proxies)
    try:
        await _limit(request, name, address)
    except Limited as exc:
        return render(
            request,
            "admin/login.html",
            None,
            {**context, "error": exc.message},
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )
    found = await state.staff.by_name(name) if name else None
    # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    ok = await asyncio.to_thread(verify_password, found[1] if found else None, password)
    if not ok or found is None:
        return render(
            request, "admin/login.html", None, {**context, "error": WRONG}, status_code=401
        )
    member = found[0]
    try:  # the right password from here: earlier slips from this address are forgiven
        await state.login_per_account.clear(_account_key(name, address), "login-account")
    except Exception:
        log.warning("login rate limit store unavailable; not cleared for %r", name)
    response = RedirectResponse(target, status_code=303)
    old = request.cookies.get(state.sessions.cookie)
    if old:  # never keep a session id chosen before login
        await state.sessions.store.close(old)
    await state.sessions.open(response, member, address)
    await state.audit.record(member.id, member.name, "login", None, address)
    return response


async def logout(request: Request) -> Response:
    """End the session on the server too, so a copied cookie stops working at once."""
    state = state_of(request)
    form = await read_multi_form(request)
    await state.sessions.check_form(request, {k: v[-1] for k, v in form.items()})
    member = await state.sessions.staff(request)
    response = RedirectResponse("/admin/login", status_code=303)
    await state.sessions.close(request, response)
    if member is not None:
        await state.live.staff_changed(member.id)
        await state.audit.record(member.id, member.name, "logout")
    return response


routes = [
    Route("/admin", admin_home, methods=["GET"]),
    Route("/admin/login", login_page, methods=["GET"]),
    Route("/admin/login", login, methods=["POST"]),
    Route("/admin/logout", logout, methods=["POST"]),
]
