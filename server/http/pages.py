"""HTML pages: the post index, a post with its thread, and the no-JavaScript comment form."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from itsdangerous import BadSignature, TimestampSigner
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from server.discussion import tree
from server.discussion.actions import HELD_HONEYPOT, HELD_NO_FORM_TOKEN, HELD_TOO_FAST
from server.discussion.paging import SORTS, BadCursor
from server.discussion.validation import validate_comment
from server.errors import BadRequest, CommentsClosed, NotFound, RateLimited, ValidationFailed
from server.http.bodies import read_form
from server.http.clients import client_address
from server.i18n import N_
from server.state import state_of
from server.templates import Templates

FORM_FIELDS = ("author", "email", "website", "text", "parent", "notify")
HONEYPOT = "subject"
POSTS_PER_PAGE = 20


def _is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "²", which ``int`` refuses."""
    return text.isascii() and text.isdigit() and len(text) < 19


def _form_signer(request: Request) -> TimestampSigner:
    return TimestampSigner(state_of(request).settings.secret_key, salt="kibitz.form")


def form_check(request: Request, form: dict[str, str]) -> str | None:
    """Why an invisible anti-spam check would hold this submission, or None.

    People never notice these: the honeypot field is hidden from them and from screen
    readers, and nobody types a comment within the minimum fill time.
    """
    if form.get(HONEYPOT, "").strip():
        return HELD_HONEYPOT
    token = form.get("form_token", "")
    try:
        rendered = float(_form_signer(request).unsign(token).decode())
    except (BadSignature, ValueError):
        return HELD_NO_FORM_TOKEN
    if time.time() - rendered < state_of(request).settings.min_fill_seconds:
        return HELD_TOO_FAST
    return None


async def index(request: Request) -> Response:
    """The posts, newest first, POSTS_PER_PAGE at a time (``?page=2`` for older ones)."""
    raw = request.query_params.get("page", "1")
    page = int(raw) if _is_number(raw) and 0 < int(raw) < 100_000 else 0
    if not page:
        raise NotFound()
    posts = await state_of(request).posts.newest(
        limit=POSTS_PER_PAGE + 1, offset=(page - 1) * POSTS_PER_PAGE
    )
    if page > 1 and not posts:
        raise NotFound()
    templates: Templates = state_of(request).templates
    return templates.response(
        request,
        "index.html",
        {
            "posts": posts[:POSTS_PER_PAGE],
            "page": page,
            "older": page + 1 if len(posts) > POSTS_PER_PAGE else None,
            "newer": page - 1 if page > 1 else None,
        },
    )


async def _render_post(
    request: Request,
    slug: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    state = state_of(request)
    post = await state.posts.by_slug(slug)
    if post is None:
        raise NotFound()
    sort, after = _page_params(request)
    shown = await _first_page(request, post.uri, sort, after)
    values = dict(values or {})
    reply_to = None
    wanted = values.get("parent") or request.query_params.get("replytocom", "")
    if _is_number(wanted):
        found = await state.comments.get(int(wanted))
        if found is not None and found.thread_id == post.thread_id and found.status == "approved":
            reply_to = found
        values["parent"] = str(reply_to.id) if reply_to else ""
    context = {
        "post": post,
        **shown,
        "values": values,
        "errors": errors or {},
        "form_error": form_error,
        "reply_to": reply_to,
        "notice": request.query_params.get("notice"),
        "form_token": _form_signer(request).sign(f"{time.time():.3f}").decode(),
        "edit_window": state.settings.edit_window,
        "csrf_token": state.sessions.csrf_token(request),
        "page_scripts": [state.bundle.assets["page"].url],
    }
    templates: Templates = state.templates
    return templates.response(
        request, "post.html", context, status_code=status_code, headers=headers
    )


def _page_params(request: Request) -> tuple[str, str | None]:
    sort = request.query_params.get("sort", "oldest")
    if sort not in SORTS:
        raise BadRequest(N_("sort is one of oldest, newest, best."))
    after = request.query_params.get("after") or None
    return sort, after


async def _first_page(
    request: Request, uri: str, sort: str, after: str | None
) -> dict[str, object]:
    """The comments a post page shows: one page of top-level comments with their replies,
    the link to the next page, and whether the thread is closed."""
    state = state_of(request)
    empty: dict[str, object] = {
        "nodes": [],
        "cursor": 0,
        "count": 0,
        "top_level": 0,
        "closed": False,
        "next_url": None,
        "sort": sort,
        "sorts": SORTS,
        "paged": after is not None,
    }
    thread = await state.comments.thread(uri)
    if thread is None:
        return empty
    try:
        found = await state.pager.page(thread, sort, state.settings.page_size, after)
    except BadCursor:
        raise BadRequest(
            N_("This page link is not valid any more; start from the first page.")
        ) from None
    if found is None:
        return empty
    index, page, comments = found
    token = state.pager.next_token(thread.id, sort, page)
    query = urlencode({"sort": sort, "after": token}) if token else None
    return {
        **empty,
        "nodes": tree.build(comments, page.states, state.settings.max_depth, numbers=page.numbers),
        "cursor": index.last_seq,
        "count": page.count,
        "top_level": page.top_level,
        "closed": index.closed,
        "next_url": f"{uri}?{query}#comments" if query else None,
        "next_token": token,
    }


async def comment_link(request: Request) -> Response:
    """``/c/{id}``: 303 to the page of its post that shows the comment."""
    state = state_of(request)
    comment_id = int(request.path_params["id"])
    comment = await state.comments.get(comment_id) if comment_id < 2**63 else None
    if comment is None or comment.status != "approved":
        raise NotFound()
    slug = await state.threads.store.post_slug(comment.thread_id)
    thread = await state.comments.thread(f"/posts/{slug}") if slug else None
    if thread is None:
        raise NotFound()
    try:
        token = await state.pager.page_holding(thread, comment.id, state.settings.page_size)
    except LookupError:
        raise NotFound() from None
    query = "?" + urlencode({"sort": "oldest", "after": token}) if token else ""
    return RedirectResponse(f"{thread.uri}{query}#comment-{comment.id}", status_code=303)


async def post_page(request: Request) -> Response:
    return await _render_post(request, request.path_params["slug"])


async def submit_comment(request: Request) -> Response:
    """The form path: 303 on success, 422 (or 429) with the page and every typed value kept."""
    state = state_of(request)
    slug = request.path_params["slug"]
    post = await state.posts.by_slug(slug)
    if post is None:
        raise NotFound()
    form = await read_form(request)
    values = {name: form.get(name, "") for name in FORM_FIELDS}
    await state.sessions.check_form(request, form)
    try:
        entry = validate_comment(values)
        staff = await state.sessions.staff(request)
        comment = await state.discussion.submit(
            post.uri,
            entry,
            address=client_address(request, state.settings.trusted_proxies),
            staff=staff,
            may_create_thread=True,
            held=None if staff else form_check(request, form),
            title=post.title,
        )
    except ValidationFailed as exc:
        return await _render_post(request, slug, values=values, errors=exc.fields, status_code=422)
    except CommentsClosed as exc:
        # Closed while they typed: keep every word so nothing is lost.
        return await _render_post(
            request, slug, values=values, form_error=exc.message, status_code=403
        )
    except RateLimited as exc:
        return await _render_post(
            request,
            slug,
            values=values,
            form_error=exc.message,
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )
    if values["notify"] and state.mail is not None:
        await state.mail.subscribe(comment)  # reply mail, after a confirmation mail
    if comment.status == "approved":
        target = f"{post.uri}#comment-{comment.id}"
    else:
        target = f"{post.uri}?notice=held#respond"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        f"kibitz_edit_{comment.id}",
        state.edit_tokens.issue(comment.id),
        max_age=state.settings.edit_window,
        path=post.uri,
        samesite="strict",
        secure=state.settings.https,
        httponly=False,
    )
    return response


async def to_comments(request: Request) -> Response:
    """After a 422 the address bar shows the form's URL; opening it again leads to the post."""
    post = await state_of(request).posts.by_slug(request.path_params["slug"])
    if post is None:
        raise NotFound()
    return RedirectResponse(f"{post.uri}#comments", status_code=303)


routes = [
    Route("/", index, methods=["GET"]),
    Route("/posts/{slug:str}", post_page, methods=["GET"]),
    Route("/posts/{slug:str}/comments", submit_comment, methods=["POST"]),
    Route("/posts/{slug:str}/comments", to_comments, methods=["GET"]),
    Route("/c/{id:int}", comment_link, methods=["GET"]),
]
