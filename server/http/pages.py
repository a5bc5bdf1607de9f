"""HTML pages: the post index, a post with its thread, and the no-JavaScript comment form."""

from __future__ import annotations

import functools
import hmac
import secrets
import time
from collections.abc import Hashable
from typing import Any
from urllib.parse import urlencode

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from itsdangerous.encoding import base64_encode, want_bytes
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from db.comments import Submission, Submitted
from db.errors import Unavailable
from db.models import Comment, Post, Status
from server.auth.sso import SIGN_IN_REQUIRED, SsoRejected
from server.discussion import tree
from server.discussion.actions import (
    HELD_FORM_EXPIRED,
    HELD_FORM_FOR_ANOTHER_POST,
    HELD_HONEYPOT,
    HELD_NO_FORM_TOKEN,
    HELD_TOO_FAST,
    AlreadySubmitted,
)
from server.discussion.cache import RenderedPage, RenderedThread
from server.discussion.errors import Closed, InvalidInput, Limited
from server.discussion.paging import SORTS, BadCursor
from server.discussion.shapes import APPROVED
from server.discussion.validation import validate_comment
from server.errors import BadRequest, Conflicting, KibitzError, NotFound, unavailable
from server.http import idempotency, replay
from server.http.bodies import read_form
from server.http.clients import client_address
from server.http.params import integer
from server.i18n import N_
from server.state import state_of
from server.templates import Templates

RESENT_OTHER = N_(
    "This form was already sent with a different comment. Check the thread; to post this "
    "as a new comment, send it again."
)

FORM_FIELDS = ("author", "email", "website", "text", "parent", "notify")
# A form's token is good for this long after the page was rendered (docs/security.md).
FORM_TOKEN_MAX_AGE = 24 * 3600
HONEYPOT = "subject"
POSTS_PER_PAGE = 20


class FormSigner(TimestampSigner):
    """itsdangerous' signer with its HMAC key set up once, not for every signature.

    A kept post page is given again with a fresh form token each time, so its one signature
    is a quarter of such an answer's CPU; itsdangerous derives the key and sets up the HMAC
    anew for each (14 µs here, 9 µs so). Signatures are the same; ``unsign`` is untouched.
    """

    def __init__(self, secret_key: str) -> None:
        super().__init__(secret_key, salt="kibitz.form")
        self._mac = hmac.new(self.derive_key(), digestmod=self.digest_method)

    def get_signature(self, value: str | bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(want_bytes(value))
        return base64_encode(mac.digest())


@functools.lru_cache(maxsize=4)
def _signer_for(secret_key: str) -> FormSigner:
    return FormSigner(secret_key)


def _form_signer(request: Request) -> FormSigner:
    return _signer_for(state_of(request).settings.secret_key)


def form_token(request: Request, post_id: int) -> str:
    """The form's token: its post, when the page was rendered and a nonce, signed.

    The post and the time let :func:`form_check` hold a token used on another post or long
    after; the nonce makes it unique per rendering (even of a cached page), so it is the
    form's one-use submission token too (:mod:`server.http.idempotency`): a form sent twice
    carries the same one, a fresh rendering a new one.
    """
    return _signed_form_token(_form_signer(request), post_id)


def _signed_form_token(signer: TimestampSigner, post_id: int) -> str:
    nonce = secrets.token_urlsafe(9)
    return signer.sign(f"{post_id}|{time.time():.3f}|{nonce}").decode()


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
        post, stamp = value.split("|")[:2]  # then the nonce
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


def _page_params(request: Request) -> tuple[str, str | None]:
    sort = request.query_params.get("sort", "oldest")
    if sort not in SORTS:
        raise BadRequest(N_("sort is one of oldest, newest, best."))
    after = request.query_params.get("after") or None
    return sort, after


def _empty(sort: str, after: str | None) -> RenderedThread:
    return RenderedThread(cursor=0, count=0, html="", sort=sort, paged=after is not None)


async def _comment_list(
    request: Request,
    post: Post,
    sort: str = "oldest",
    after: str | None = None,
    *,
    staff_csrf: str | None = None,
) -> RenderedThread:
    """One page of the post's comments as HTML, rendered once per visible state of its thread.

    The key is everything the fragment shows: the thread's ``last_seq`` (comments, pins,
    closing), its ``votes_seq`` and this process's unflushed votes (the counts), the page
    (sort, after) and the view (uri in the reply links, language, depth, page size). On a hit
    this costs one indexed read of the thread row: no comments are read, no tree is built.
    A miss is cached only when the page was read at the version looked up, so a cached
    fragment always shows exactly its key's state. Per-reader parts (form token, CSRF, staff
    controls, the reader's own votes) are never in it: the page's script marks own votes.
    With ``staff_csrf`` (a signed-in staff member's token) the list carries staff controls
    (pin and unpin, posting to the admin's form handler with that token): it is rendered
    for this request alone, never read from or put in a cache.
    """
    state = state_of(request)
    settings = state.settings
    thread = await state.comments.thread(post.uri)
    if thread is None:
        return _empty(sort, after)
    version = state.thread_version(thread)
    view = (sort, after, post.uri, settings.language, settings.max_depth, settings.page_size)
    key = (version, *view)
    rendered = None if staff_csrf else state.fragments.get(key)
    if rendered is not None:
        return rendered
    try:
        found = await state.pager.page(thread, sort, settings.page_size, after)
    except BadCursor:
        raise BadRequest(
            N_("This page link is not valid any more; start from the first page.")
        ) from None
    if found is None:
        return _empty(sort, after)
    index, page, comments = found
    token = state.pager.next_token(thread.id, sort, page)
    nodes = tree.build(comments, page.states, settings.max_depth, numbers=page.numbers)
    # A staff rendering is never cached, so it never claims a version a cache could key.
    consistent = (
        index.version == thread.version and index.closed == thread.closed and not staff_csrf
    )
    rendered = RenderedThread(
        cursor=index.last_seq,
        count=page.count,
        html=state.templates.render(
            "_comment_list.html",
            post=post,
            nodes=nodes,
            edit_window=settings.edit_window,
            staff_csrf=staff_csrf,
        ),
        top_level=page.top_level,
        closed=index.closed,
        next_token=token,
        sort=sort,
        paged=after is not None,
        version=version if consistent else None,
    )
    if consistent:
        state.fragments.put(key, rendered)
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
        "top_level": rendered.top_level,
        "closed": rendered.closed,
        "next_url": _next_url(post.uri, rendered),
        "next_token": rendered.next_token,
        "sort": rendered.sort,
        "sorts": SORTS,
        "paged": rendered.paged,
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


def _next_url(uri: str, rendered: RenderedThread) -> str | None:
    if rendered.next_token is None:
        return None
    return f"{uri}?{urlencode({'sort': rendered.sort, 'after': rendered.next_token})}#comments"


async def _render_post(
    request: Request,
    slug: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    known: Post | None = None,
    given_token: str | None = None,
) -> Response:
    """The post page; with ``known`` (the database is down) only the post and the form."""
    state = state_of(request)
    post = known or await state.posts.by_slug(slug)
    if post is None:
        raise NotFound()
    state.cache.remember_post(post)
    sort, after = _page_params(request)
    csrf = state.sessions.csrf_token(request)
    if known is None:
        staff = csrf is not None and await state.sessions.staff(request) is not None
        rendered = await _comment_list(
            request, post, sort, after, staff_csrf=csrf if staff else None
        )
    else:  # the database is down: the post and the form only
        rendered = RenderedThread(cursor=0, count=0, html="")
    values = dict(values or {})
    reply_to = None
    wanted = values.get("parent") or request.query_params.get("replytocom", "")
    wanted_id = integer(wanted)
    if wanted_id is not None and known is None:
        found = await state.comments.get(wanted_id)
        if found and found.thread_id == post.thread_id and found.status == APPROVED:
            reply_to = found
        values["parent"] = str(reply_to.id) if reply_to else ""
    context = _context(
        request,
        post,
        rendered,
        form_token=given_token or form_token(request, post.id),
        csrf_token=csrf,
        values=values,
        errors=errors,
        form_error=form_error,
        reply_to=reply_to,
        notice=request.query_params.get("notice"),
    )
    context["degraded"] = known is not None
    templates: Templates = state.templates
    return templates.response(
        request, "post.html", context, status_code=status_code, headers=headers
    )


async def comment_link(request: Request) -> Response:
    """``/c/{id}``: 303 to the page of its post that shows the comment."""
    state = state_of(request)
    comment_id = int(request.path_params["id"])
    comment = await state.comments.get(comment_id) if comment_id < 2**63 else None
    if comment is None or comment.status != APPROVED:
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


# Query parameters a cached page may have: which page of the comments it shows.
PAGE_PARAMS = ("sort", "after")
# Where the page's form token goes in a cached page: a value no template could print.
FORM_SLOT = "kibitz-form-token-slot-" + secrets.token_hex(8)


async def post_page(request: Request) -> Response:
    """A post page; the common visit (no reply target, no notice, no session) from a cache.

    A reader without a session cookie who opens the plain page (or one page of its comments,
    ``?sort=…&after=…``) sees exactly what every other
    such reader sees, but for the form token: that page is rendered once per visible state
    of the thread and post, cut at the token, and each request joins the parts around a fresh
    token. ``?replytocom``, ``?notice`` and the form's error pages are rendered in full
    around the cached comment list; a staff member's page (their CSRF token, pin controls on
    the comments) is rendered in full, comment list included, and cached nowhere.
    """
    state = state_of(request)
    slug = request.path_params["slug"]
    if (
        any(name not in PAGE_PARAMS for name in request.query_params)
        or state.sessions.csrf_token(request) is not None
    ):
        return await _render_post(request, slug)
    sort, after = _page_params(request)
    found = await state.posts.page_version(slug)
    if found is None:
        raise NotFound()
    stored, thread_id, thread_version = found
    settings = state.settings
    version = state.stored_version(thread_id, thread_version)
    view = ("page", sort, after, settings.language, settings.max_depth, settings.page_size)
    page = state.pages.get((stored, version, *view))
    exact = page is not None  # the parts show exactly ``version`` of the thread
    if page is None:
        post = await state.posts.by_slug(slug)
        if post is None:
            raise NotFound()
        state.cache.remember_post(post)  # its form can come back while the database is down
        rendered = await _comment_list(request, post, sort, after)
        html = state.templates.render(
            "post.html",
            **_context(request, post, rendered, form_token=FORM_SLOT, csrf_token=None, values={}),
        )
        parts = tuple(part.encode() for part in html.split(FORM_SLOT))
        if len(parts) != 2:  # the template changed; never serve a page with a slot in it
            return await _render_post(request, slug)
        page = RenderedPage(rendered.cursor, parts)
        if rendered.version is not None:  # the fragment shows exactly that version
            state.pages.put((stored, rendered.version, *view), page)
            exact = rendered.version == version
    post_id = int(stored[0])
    token = form_token(request, post_id)
    if exact:
        _allow_again(request, slug, (stored, version), post_id, token)
    return Response(page.parts[0] + token.encode() + page.parts[1], media_type="text/html")


def _allow_again(request: Request, slug: str, version: Hashable, post_id: int, token: str) -> None:
    """Let the protocol give this page again while the post and its thread stand, with a
    fresh form token each time (``server/http/replay.py``)."""
    state = state_of(request)

    async def version_now() -> Hashable:
        found = await state.posts.page_version(slug)
        if found is None:
            return None
        stored, thread_id, thread_version = found
        return (stored, state.stored_version(thread_id, thread_version))

    signer = _form_signer(request)
    hole = replay.Hole(token, lambda: _signed_form_token(signer, post_id))
    replay.allow(request, version, version_now, mark=state.change_mark, hole=hole)


async def submit_comment(request: Request) -> Response:
    """The form path: 303 on success, 422 (or 429) with the page and every typed value kept."""
    state = state_of(request)
    slug = request.path_params["slug"]
    try:
        post = await state.posts.by_slug(slug)
    except Unavailable:
        post = state.cache.post(slug)
        if post is None:
            raise
    if post is None:
        raise NotFound()
    state.cache.remember_post(post)
    form = await read_form(request)
    values = {name: form.get(name, "") for name in FORM_FIELDS}
    await state.sessions.check_form(request, form)
    key = idempotency.form_key(form.get("form_token", ""), post.id)
    submission = (
        Submission(key, idempotency.body_hash({"slug": slug, **values}), 303) if key else None
    )
    try:
        if submission is not None and (found := await idempotency.earlier(state, submission)):
            return await _redirect_again(request, post, found)
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
            submission=submission,
        )
    except AlreadySubmitted:  # the same form twice at the same moment: the other one won
        assert submission is not None
        found = await idempotency.earlier(state, submission)
        if found is None:
            raise KibitzError() from None
        return await _redirect_again(request, post, found)
    except Conflicting:
        return await _render_post(
            request, slug, values=values, form_error=RESENT_OTHER, status_code=409
        )
    except InvalidInput as exc:
        return await _render_post(request, slug, values=values, errors=exc.fields, status_code=422)
    except Closed as exc:
        # Closed while they typed: keep every word so nothing is lost.
        return await _render_post(
            request, slug, values=values, form_error=exc.message, status_code=403
        )
    except Limited as exc:
        return await _render_post(
            request,
            slug,
            values=values,
            form_error=exc.message,
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )
    except Unavailable as exc:
        # The same one-use token comes back in the form: if the comment did commit before
        # the database went away, sending it again answers its 303 instead of a second one.
        down = unavailable(exc)
        return await _render_post(
            request,
            slug,
            values=values,
            form_error=down.form_message,
            status_code=down.status,
            headers={"Retry-After": str(down.retry_after)},
            known=post,
            given_token=form.get("form_token") if key else None,
        )
    if values["notify"] and state.mail is not None:
        await state.mail.subscribe(comment)  # reply mail, after a confirmation mail
    return _redirect(request, post, comment)


async def _redirect_again(request: Request, post: Post, found: Submitted) -> Response:
    """A form sent again (double click, a retry after a cut connection): the first 303."""
    comment = await state_of(request).comments.get(found.comment_id) if found.comment_id else None
    if comment is None:
        raise KibitzError()
    return _redirect(request, post, comment)


def _redirect(request: Request, post: Post, comment: Comment) -> Response:
    state = state_of(request)
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
    Route("/c/{id:int}", comment_link, methods=["GET"]),
]
