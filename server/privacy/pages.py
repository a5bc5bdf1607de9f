"""``/privacy``: a commenter asks for their own data, by a link mailed to their address.

The answer to the request is the same whether or not the address wrote anything, so the form
cannot tell anyone who comments here; a mail goes out only to an address that did (so the
form cannot be used to mail strangers), and requests are limited per client address and per
e-mail address. The link's page changes nothing on GET (mail scanners open links): download
and erase are buttons that POST the token.
"""

from __future__ import annotations

from email.utils import make_msgid, parseaddr
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db.mail import OutgoingMail
from db.privacy import PrivacyStore
from server.discussion.errors import Limited
from server.discussion.lookalikes import mailbox
from server.discussion.validation import MAX_EMAIL, valid_email
from server.errors import BadRequest
from server.http.bodies import read_form
from server.http.clients import client_address
from server.i18n import N_
from server.mail.text import one_line
from server.privacy import data
from server.privacy.links import LINK_HOURS, PrivacyLinks
from server.state import State, state_of

# The token sits in the URL: keep it out of Referer headers, caches and search engines.
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


def _render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    response: Response = state_of(request).templates.response(
        request, name, context, status_code=status_code, headers=PRIVATE
    )
    return response


async def request_form(request: Request) -> Response:
    state = state_of(request)
    return _render(request, "privacy/request.html", {"values": {}, "mail": state.mail is not None})


async def _mail_link(state: State, email: str) -> None:
    assert state.mail is not None
    links = PrivacyLinks(state.settings.secret_key)
    url = f"{state.settings.public_url}/privacy/mine?t={quote(links.token(email))}"
    site = urlsplit(state.settings.public_url).hostname or "kibitz"
    text = state.templates.render("mail/privacy.txt", site=site, url=url, hours=LINK_HOURS)
    head, _, body = text.partition("\n\n")
    domain = parseaddr(state.settings.mail_from)[1].rpartition("@")[2] or site
    message_id = make_msgid("kibitz", domain=domain)
    mail = OutgoingMail(
        f"privacy:{message_id}",
        email,
        one_line(head.removeprefix("Subject: ")),
        body.strip() + "\n",
        {"Message-ID": message_id},
    )
    if await state.mail.store.enqueue(mail):
        state.mail.sender.wake()


async def request_link(request: Request) -> Response:
    """Mail the link if the address has comments; answer the same in every case."""
    state = state_of(request)
    form = await read_form(request)
    email = (form.get("email") or "").strip()
    if not email or len(email) > MAX_EMAIL or not valid_email(email):
        return _render(
            request,
            "privacy/request.html",
            {
                "values": {"email": email},
                "error": N_("Please enter a valid e-mail address."),
                "mail": state.mail is not None,
            },
            status_code=422,
        )
    if state.mail is None:
        return _render(
            request, "privacy/request.html", {"values": {}, "mail": False}, status_code=503
        )
    try:
        address = client_address(request, state.settings.trusted_proxies)
        if address is not None:
            await state.privacy_per_address.hit(address, "privacy")
        await state.privacy_per_email.hit(mailbox(email), "privacy-email")
    except Limited as exc:
        response = _render(
            request,
            "privacy/request.html",
            {
                "values": {"email": email},
                "error": N_("Too many requests. Please wait a while and try again."),
                "mail": True,
            },
            status_code=429,
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if await PrivacyStore(state.db).has_comments(email):
        await _mail_link(state, email)
    return _render(request, "privacy/sent.html", {"hours": LINK_HOURS})


async def _token(request: Request) -> str:
    if request.method == "POST":
        token = (await read_form(request)).get("t", "")
    else:
        token = request.query_params.get("t", "")
    if not token:
        raise BadRequest(N_("This address is incomplete: copy the whole link from the e-mail."))
    return token


async def mine(request: Request) -> Response:
    """Every comment written with the link's address, in every status."""
    state = state_of(request)
    token = await _token(request)
    email = PrivacyLinks(state.settings.secret_key).email(token)
    found = await data.comments_of(state, email)
    return _render(request, "privacy/mine.html", {"email": email, "items": found, "token": token})


async def download(request: Request) -> Response:
    state = state_of(request)
    email = PrivacyLinks(state.settings.secret_key).email(await _token(request))
    return await data.download(state, email)


async def erase(request: Request) -> Response:
    state = state_of(request)
    email = PrivacyLinks(state.settings.secret_key).email(await _token(request))
    count = await data.erase(state, email, None)
    return _render(request, "privacy/erased.html", {"count": count})


routes = [
    Route("/privacy", request_form, methods=["GET"]),
    Route("/privacy", request_link, methods=["POST"]),
    Route("/privacy/mine", mine, methods=["GET"]),
    Route("/privacy/mine/download", download, methods=["POST"]),
    Route("/privacy/mine/erase", erase, methods=["POST"]),
]
