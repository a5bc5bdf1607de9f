"""The application: the route table, and the services built in ``lifespan`` into one typed state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from db.audit import AuditLog
from db.bans import BanStore
from db.comments import CommentStore
from db.database import connect
from db.migrate import migrate
from db.models import now
from db.moderation import ModerationStore
from db.postgres import PostgresDatabase
from db.posts import PostStore
from db.sessions import SessionStore
from db.staff import StaffStore
from db.threads import ThreadStore
from db.votes import VoteStore
from realtime import endpoint as live_endpoint
from realtime.publisher import Live
from server import errors
from server.admin import bans as admin_bans
from server.admin import guard as admin_guard
from server.admin import login as admin_login
from server.admin import privacy as admin_privacy
from server.admin import queue as admin_queue
from server.admin import staff as admin_staff
from server.admin import threads as admin_threads
from server.admin import webhooks as admin_webhooks
from server.auth.credentials import EditTokens
from server.auth.sessions import Sessions
from server.discussion.actions import Discussion
from server.discussion.cache import CountCache, CountQuestions, ThreadCache
from server.discussion.paging import Pager
from server.discussion.ratelimit import PostLimiter
from server.discussion.threads import Threads
from server.discussion.votes import Votes
from server.http import (
    api,
    diagnostics,
    feeds,
    health,
    openapi,
    pages,
    replay,
    threads,
    webhooks,
    widget,
)
from server.http import bans as ban_routes
from server.http.cors import CORS
from server.http.headers import SecurityHeaders
from server.lru import LRU
from server.mail import pages as mail_pages
from server.mail.notifications import Mail
from server.privacy import pages as privacy_pages
from server.settings import Settings, load
from server.state import State
from server.templates import Templates
from server.webhooks.service import Webhooks

log = logging.getLogger("kibitz")


async def _housekeeping(state: State) -> None:
    """Erase old addresses, prune old events and submission keys, hourly, surviving errors."""
    settings = state.settings
    while True:
        try:
            erased = await state.comments.erase_addresses(
                now() - timedelta(days=settings.address_retention_days)
            )
            pruned = await state.comments.prune_events(
                now() - timedelta(days=settings.event_retention_days)
            )
            keys = await state.comments.prune_submissions()
            if erased or pruned or keys:
                log.info(
                    "housekeeping: erased %d addresses, pruned %d events and %d submission keys",
                    erased,
                    pruned,
                    keys,
                )
        except Exception:
            log.exception("housekeeping failed; trying again in an hour")
        await asyncio.sleep(3600)


# A graceful stop (SIGTERM): uvicorn stops listening and waits up to SHUTDOWN_GRACE seconds for
# in-flight requests, then the services close within CLOSE_TIMEOUT (docs/deploy.md).
SHUTDOWN_GRACE = 10
CLOSE_TIMEOUT = 5

# Login attempts, counted whether they succeed or not: per account from one client address
# (guessing one password; a success clears it) and per client address (trying many accounts).
# docs/security.md lists them.
LOGIN_RATE_PER_ACCOUNT = "5/minute;30/hour"
LOGIN_RATE_PER_ADDRESS = "20/minute;100/hour"
# Requests for a commenter's own data (each may send a mail): per client address and per
# e-mail address, so neither one visitor nor many can flood one mailbox.
PRIVACY_RATE_PER_ADDRESS = "5/hour;20/day"
PRIVACY_RATE_PER_EMAIL = "3/hour;6/day"


async def open_state(
    app: Starlette, settings: Settings, *, tune_gc: bool = False, background: bool = True
) -> State:
    """Connect, migrate, build every service, then start the ones that run in the background.

    ``background=False`` (one-shot commands such as ``kibitz mail-in``) wires every listener
    and outbox but starts no sender, worker or housekeeping task: the serving processes
    deliver what such a command queues.
    """
    db = await connect(settings.database_url)
    await migrate(db)
    comments, staff = CommentStore(db), StaffStore(db)

    def limiter(rate: str | None) -> PostLimiter:
        return PostLimiter(rate, settings.redis_url, settings.redis_prefix)

    bans = BanStore(db)
    discussion = Discussion(settings, comments, limiter(settings.post_rate))
    templates = Templates(settings)
    state = State(
        settings=settings,
        db=db,
        comments=comments,
        posts=PostStore(db),
        staff=staff,
        moderation=ModerationStore(db),
        audit=AuditLog(db),
        bans=bans,
        discussion=discussion,
        templates=templates,
        edit_tokens=EditTokens(settings.secret_key, settings.edit_window),
        sessions=Sessions(settings, SessionStore(db)),
        login_per_account=limiter(LOGIN_RATE_PER_ACCOUNT),
        login_per_address=limiter(LOGIN_RATE_PER_ADDRESS),
        privacy_per_address=limiter(PRIVACY_RATE_PER_ADDRESS),
        privacy_per_email=limiter(PRIVACY_RATE_PER_EMAIL),
        cache=ThreadCache(),
        counts=CountCache(),
        count_questions=CountQuestions(),
        fragments=LRU(256),
        pages=LRU(64),
        page_bodies=LRU(256),
        live=Live(app, settings, comments),
        bundle=widget.Bundle(),
        mail=Mail.from_settings(settings, db),
        webhooks=Webhooks(settings, db),
        threads=Threads(settings, ThreadStore(db), discussion.listeners),
        votes=Votes(
            settings,
            VoteStore(db),
            discussion.listeners,
            limiter(settings.vote_rate),
            limiter(settings.voter_rate),
        ),
        pager=Pager(ThreadStore(db), settings.secret_key),
    )
    admin_guard.record_moderation(state)
    await state.live.start(discussion.listeners, tune_gc=tune_gc)
    state.health.update(state.live.health_checks())
    if state.mail is not None:
        state.mail.start(state, background=background)
    state.webhooks.start(state, background=background)
    if background:
        if isinstance(db, PostgresDatabase):
            # Answers given again skip their check while no commit was heard of.
            notices = db.listen_for_changes()
            state.health["change_notices"] = notices.health
        state.background.append(asyncio.create_task(_housekeeping(state)))
        if settings.close_after_days:
            state.background.append(asyncio.create_task(state.threads.run_auto_close()))
    return state


def close_readers_on_stop_signals(state: State) -> None:
    """On SIGTERM or SIGINT, close live readers at once, then let uvicorn's handler run.

    uvicorn lets in-flight requests finish before the application hears of the stop; the
    readers on the live port should not wait for that. Only ``kibitz serve`` asks for this
    (it changes the process's signal handlers, which uvicorn restores when it exits).
    """
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum: int, frame: object, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(state.live.stopping)
            previous(signum, frame)

        signal.signal(sig, handler)


async def close_state(state: State) -> None:
    for task in state.background:
        task.cancel()
    await asyncio.gather(*state.background, return_exceptions=True)
    await state.live.stop()
    await state.votes.close()
    for limiter in (
        state.discussion.limiter,
        state.login_per_account,
        state.login_per_address,
        state.votes.per_vote,
        state.votes.per_voter,
    ):
        await limiter.close()
    await state.db.close()


def create_app(settings: Settings, *, tune_gc: bool = False) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        state = await open_state(app, settings, tune_gc=tune_gc)
        app.state.kibitz = state
        if tune_gc:  # a `kibitz serve` process, not a server inside a test
            close_readers_on_stop_signals(state)
        try:
            # The lifespan state reaches the HTTP protocol (server/http/protocol.py) too.
            yield {replay.STATE_KEY: state.replays}
        finally:
            # uvicorn has stopped listening and let in-flight requests finish (at most
            # SHUTDOWN_GRACE seconds); closing must not take forever either.
            try:
                await asyncio.wait_for(close_state(state), CLOSE_TIMEOUT)
            except TimeoutError:
                log.error("closing took longer than %s s; exiting anyway", CLOSE_TIMEOUT)

    routes = [
        *pages.routes,
        *threads.routes,  # before api's /api/comments/{id}/{action}
        *api.routes,
        *webhooks.routes,
        *ban_routes.routes,
        *openapi.routes,
        *health.routes,
        *diagnostics.routes,
        *feeds.routes,
        *mail_pages.routes,
        *privacy_pages.routes,
        *admin_privacy.routes,
        *live_endpoint.routes,
        *admin_login.routes,
        *admin_queue.routes,
        *admin_staff.routes,
        *admin_webhooks.routes,
        *admin_threads.routes,
        *admin_bans.routes,
        *widget.routes,
        Mount("/static", StaticFiles(packages=[("web", "static")]), name="static"),
    ]
    return KibitzApp(
        settings,
        routes=routes,
        lifespan=lifespan,
        exception_handlers=errors.handlers(),
        middleware=[Middleware(CORS, settings=settings), Middleware(admin_guard.AdminHeaders)],
    )


class KibitzApp(Starlette):
    """Starlette with :class:`SecurityHeaders` outside everything, even the 500 handler.

    The live channel's websockets go straight to their endpoint: the middleware and the
    router would only pass them through, yet each of their frames would stay alive for as
    long as the reader stays, about 5 KiB per reader (docs/performance.md).
    """

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.settings = settings
        super().__init__(**kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] in live_endpoint.PATHS:
            scope["app"] = self
            await live_endpoint.asgi_endpoint(WebSocket(scope, receive, send))
            return
        await super().__call__(scope, receive, send)

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack(), self.settings)


def from_environment() -> Starlette:
    """The factory uvicorn workers call: settings are read here, once per process.

    A long-running server process tunes the garbage collector (see realtime.publisher).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return create_app(load(), tune_gc=True)
