"""The pages that links in mails open: moderate a held comment, confirm or stop reply mail.

Every link opens a confirmation page (GET) that changes nothing, and the page's button POSTs:
mail scanners and link previews fetch every URL in a mail, and must never approve a comment
or subscribe someone. The signed token is the only credential, so these pages need no login;
it travels in the form body on the POST (and, for RFC 8058 one-click unsubscribe, in the
query string with the body ``List-Unsubscribe=One-Click``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db.mail import MailStore
from server.discussion.errors import Changed
from server.discussion.moderation import Action
from server.errors import BadRequest, Forbidden, NotFound, Outdated
from server.http.bodies import read_form
from server.http.feeds import comment_link
from server.mail.links import MailLinks
from server.state import state_of


def _outdated() -> Outdated:
    return Outdated(
        N_(
            "This comment was edited after this mail was sent. Read it again in the "
            "moderation queue, then decide there."
        )
    )


# The token sits in the URL: keep it out of Referer headers, caches and search engines.
PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


def _tools(request: Request) -> tuple[MailStore, MailLinks]:
    state = state_of(request)
    return MailStore(state.db), MailLinks(state.settings.secret_key)


async def _token(request: Request) -> str:
    if request.method == "POST":
        form = await read_form(request)
        token = form.get("t") or request.query_params.get("t", "")
    else:
        token = request.query_params.get("t", "")
    if not token:
        raise BadRequest(N_("This address is incomplete: copy the whole link from the e-mail."))
    return token


def _page(request: Request, **context: Any) -> Response:
    context.setdefault("action", request.url.path)
    response: Response = state_of(request).templates.response(
        request, "mail/action.html", context, headers=PRIVATE
    )
    return response


async def moderate(request: Request) -> Response:
    state = state_of(request)
    store, links = _tools(request)
    token = await _token(request)
    link = links.moderation(token)
    if await store.link_used(link.nonce):
        raise Forbidden(N_("This link was used already: each moderation mail acts once."))
    staff = await state.staff.by_id(link.staff_id)
    if staff is None:
        raise Forbidden(N_("The staff account this link was sent to no longer exists."))
    comment = await state.comments.get(link.comment_id)
    if comment is None:
        raise NotFound(f"There is no comment {link.comment_id}.")
    if link.version is not None and link.version != comment.version:
        raise _outdated()
    uri, title = await store.thread_of(comment.thread_id)
    page_url = comment_link(state.settings, uri, comment.id)
    approve = link.action == Action.APPROVE
    if request.method == "GET":
        return _page(
            request,
            heading=N_("Approve this comment?") if approve else N_("Mark this comment as spam?"),
            comment=comment,
            title=title or uri,
            page_url=page_url,
            token=token,
            button=N_("Approve") if approve else N_("Mark as spam"),
        )
    if not await store.spend_link(link.nonce):
        raise Forbidden(N_("This link was used already: each moderation mail acts once."))
    try:
        updated = await state.discussion.moderate(
            comment.id, link.action, staff, version=link.version
        )
    except Changed:
        raise _outdated() from None
    return _page(
        request,
        heading=N_("Approved") if approve else N_("Marked as spam"),
        message=N_("The comment is now visible to readers.")
        if approve
        else N_("The comment stays hidden and is kept as spam."),
        comment=updated,
        title=title or uri,
        page_url=page_url,
    )


async def subscribe(request: Request) -> Response:
    store, links = _tools(request)
    token = await _token(request)
    subscription = await store.subscription(links.confirmation(token))
    if subscription is None:
        raise NotFound(N_("This subscription does not exist."))
    if subscription.unsubscribed:
        return _page(
            request,
            heading=N_("Unsubscribed"),
            message=N_("You stopped these notifications already."),
        )
    if request.method == "GET" and not subscription.confirmed:
        return _page(
            request,
            heading=N_("Notify you of replies?"),
            message=N_(
                "Confirm to get an e-mail when someone replies to your "
                "comment. Every such mail has a link to stop them."
            ),
            token=token,
            button=N_("Yes, notify me of replies"),
        )
    await store.confirm(subscription.id)
    return _page(
        request,
        heading=N_("Confirmed"),
        message=N_("You will get an e-mail when someone replies to your comment."),
    )


async def unsubscribe(request: Request) -> Response:
    store, links = _tools(request)
    token = await _token(request)
    subscription = await store.subscription(links.unsubscription(token))
    if subscription is None:
        raise NotFound(N_("This subscription does not exist."))
    if request.method == "GET" and not subscription.unsubscribed:
        return _page(
            request,
            heading=N_("Stop reply notifications?"),
            message=N_("You will get no more e-mail about replies to this comment."),
            token=token,
            button=N_("Unsubscribe"),
        )
    await store.unsubscribe(subscription.id)
    return _page(
        request,
        heading=N_("Unsubscribed"),
        message=N_("You will get no more e-mail about replies to this comment."),
    )


def N_(message: str) -> str:
    """Marks a message for the catalogue (as ``server.i18n.N_`` does); templates translate it."""
    return message


routes = [
    Route("/mail/moderate", moderate, methods=["GET", "POST"]),
    Route("/mail/subscribe", subscribe, methods=["GET", "POST"]),
    Route("/mail/unsubscribe", unsubscribe, methods=["GET", "POST"]),
]
