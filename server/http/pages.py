"""HTML pages: the post index, a post with its thread, and the no-JavaScript comment form."""

from __future__ import annotations

import secrets
import time
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from db.comments import visible_states
from db.models import Comment, Post, Status
from server.auth.sso import SIGN_IN_REQUIRED, SsoRejected
from server.discussion import tree
from server.discussion.actions import (
    HELD_FORM_EXPIRED,
    HELD_FORM_FOR_ANOTHER_POST,
    HELD_HONEYPOT,
    HELD_NO_FORM_TOKEN,
    HELD_TOO_FAST,
)
from server.discussion.cache import RenderedPage, RenderedThread
from server.discussion.errors import InvalidInput, Limited
from server.discussion.shapes import APPROVED
from server.discussion.validation import validate_comment
from server.errors import NotFound
from server.http.bodies import read_form
from server.http.clients import client_address
from server.http.params import integer
from server.state import state_of
from server.templates import Templates

FORM_FIELDS = ("author", "email", "website", "text", "parent", "notify")
# A form's token is good for this long after the page was rendered (docs/security.md).
FORM_TOKEN_MAX_AGE = 24 * 3600
HONEYPOT = "subject"
POSTS_PER_PAGE = 20


def _form_signer(request: Request) -> TimestampSigner:
    return TimestampSigner(state_of(request).settings.secret_key, salt="kibitz.form")


def form_token(request: Request, post_id: int) -> str:
    """The form's token: the post it belongs to and when the page was rendered, signed."""
    return _form_signer(request).sign(f"{post_id}|{time.time():.3f}").decode()


def form_check(request: Request, form: dict[str, str], post_id: int) -> str | None:
    """Why an invisible anti-spam check would hold this submission, or None.

    People never notice these: the honeypot field is hidden from them and from screen
    readers, and nobody types a comment within the minimum fill time. The token is bound to
    its post and expires after :data:`FORM_TOKEN_MAX_AGE`, so a token harvested once cannot
    be stamped on submissions to every post forever. Such a comment is held, not lost.
    """
    if form.get(HONEYPOT, "").strip():
        return HELD_HONEYPOT
    token = form.get("form_token", "")
    try:
        value = _form_signer(request).unsign(token, max_age=FORM_TOKEN_MAX_AGE).decode()
        post, _, stamp = value.partition("|")
        rendered = float(stamp)
    except SignatureExpired:
        return HELD_FORM_EXPIRED
    except (BadSignature, ValueError, UnicodeDecodeError):
        return HELD_NO_FORM_TOKEN
    if post != str(post_id):
        return HELD_FORM_FOR_ANOTHER_POST
    if time.time() - rendered < state_of(request).settings.min_fill_seconds:
        return HELD_TOO_FAST
    return None


async def index(request: Request) -> Response:
    """The posts, newest first, POSTS_PER_PAGE at a time (``?page=2`` for older ones)."""
    page = integer(request.query_params.get("page", "1"), minimum=1, maximum=99_999)
    if page is None:
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


async def _comment_list(request: Request, post: Post) -> RenderedThread:
    """The post's comment list as HTML, rendered once per visible state of its thread.

    On a hit this costs one indexed read of the thread's ``last_seq``: no comments are read,
    no tree is built, no date is formatted. A miss renders under the ``last_seq`` read in the
    same snapshot as the comments, so a cached fragment always shows exactly its state.
    """
    state = state_of(request)
    settings = state.settings
    view = (post.uri, settings.language, settings.max_depth)
    seq = await state.comments.last_seq(post.thread_id)
    rendered = state.fragments.get((post.thread_id, seq, *view))
    if rendered is not None:
        return rendered
    cursor, comments = await state.comments.visible_with_cursor(post.thread_id)
    states = visible_states((c.id, c.parent_id, c.status) for c in comments)
    nodes = tree.build(comments, states, settings.max_depth)
    rendered = RenderedThread(
        cursor=cursor,
        count=sum(1 for c in comments if c.status == APPROVED),
        html=state.templates.render(
            "_comment_list.html", post=post, nodes=nodes, edit_window=settings.edit_window
        ),
    )
    state.fragments.put((post.thread_id, cursor, *view), rendered)
    return rendered


def _context(
    request: Request,
    post: Post,
    rendered: RenderedThread,
    *,
    form_token: str,
    csrf_token: str | None,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    reply_to: Comment | None = None,
    notice: str | None = None,
) -> dict[str, Any]:
    state = state_of(request)
    return {
        "request": request,
        "post": post,
        "comment_list": Markup(rendered.html),
        "cursor": rendered.cursor,
        "count": rendered.count,
        "values": values,
        "errors": errors or {},
        "form_error": form_error,
        "reply_to": reply_to,
        "notice": notice,
        "form_token": form_token,
        "edit_window": state.settings.edit_window,
        "csrf_token": csrf_token,
        "page_scripts": [state.bundle.assets["page"].url],
        # With KIBITZ_SSO_ONLY readers get the site's sign-in link instead of the form.
        "sso_only": state.settings.sso_only,
        "sso_login_url": state.settings.sso_login_url,
    }


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
    rendered = await _comment_list(request, post)
    values = dict(values or {})
    reply_to = None
    wanted = values.get("parent") or request.query_params.get("replytocom", "")
    wanted_id = integer(wanted)
    if wanted_id is not None:
        found = await state.comments.get(wanted_id)
        if found and found.thread_id == post.thread_id and found.status == APPROVED:
            reply_to = found
        values["parent"] = str(reply_to.id) if reply_to else ""
    context = _context(
        request,
        post,
        rendered,
        form_token=form_token(request, post.id),
        csrf_token=state.sessions.csrf_token(request),
        values=values,
        errors=errors,
        form_error=form_error,
        reply_to=reply_to,
        notice=request.query_params.get("notice"),
    )
    templates: Templates = state.templates
    return templates.response(
        request, "post.html", context, status_code=status_code, headers=headers
    )


# Where the page's form token goes in a cached page: a value no template could print.
FORM_SLOT = "kibitz-form-token-slot-" + secrets.token_hex(8)


async def post_page(request: Request) -> Response:
    """A post page; the common visit (no reply target, no notice, no session) from a cache.

    A reader without a session cookie who opens the plain page sees exactly what every other
    such reader sees, but for the form token: that page is rendered once per visible state
    of the thread and post, cut at the token, and each request joins the parts around a fresh
    token. Staff (their CSRF token, their controls), ``?replytocom``, ``?notice`` and the
    form's error pages are rendered in full around the cached comment list.
    """
    state = state_of(request)
    slug = request.path_params["slug"]
    if request.query_params or state.sessions.csrf_token(request) is not None:
        return await _render_post(request, slug)
    version = await state.posts.page_version(slug)
    if version is None:
        raise NotFound()
    stored, seq = version
    settings = state.settings
    view = ("page", settings.language, settings.max_depth)
    page = state.pages.get((stored, seq, *view))
    if page is None:
        post = await state.posts.by_slug(slug)
        if post is None:
            raise NotFound()
        rendered = await _comment_list(request, post)
        html = state.templates.render(
            "post.html",
            **_context(request, post, rendered, form_token=FORM_SLOT, csrf_token=None, values={}),
        )
        parts = tuple(part.encode() for part in html.split(FORM_SLOT))
        if len(parts) != 2:  # the template changed; never serve a page with a slot in it
            return await _render_post(request, slug)
        page = RenderedPage(rendered.cursor, parts)
        state.pages.put((stored, rendered.cursor, *view), page)
    token = form_token(request, int(stored[0])).encode()
    return Response(page.parts[0] + token + page.parts[1], media_type="text/html")


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
        staff = await state.sessions.staff(request)
        if state.settings.sso_only and staff is None:
            # A plain form cannot carry the host site's sign-in token.
            raise SsoRejected(SIGN_IN_REQUIRED)
        entry = validate_comment(values)
        comment = await state.discussion.submit(
            post.uri,
            entry,
            address=client_address(request, state.settings.trusted_proxies),
            staff=staff,
            may_create_thread=True,
            held=None if staff else form_check(request, form, post.id),
            title=post.title,
        )
    except InvalidInput as exc:
        return await _render_post(request, slug, values=values, errors=exc.fields, status_code=422)
    except Limited as exc:
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
    if comment.status == Status.APPROVED:
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
]
