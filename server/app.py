"""The application: resources made in ``lifespan`` and handed down as one typed state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from db.comments import CommentStore
from db.database import Database, connect
from db.migrate import migrate
from db.models import now
from db.posts import PostStore
from db.staff import StaffStore
from realtime import endpoint as live_endpoint
from realtime.plugin import LivePlugin
from server import (
    admin,
    admin_login,
    admin_queue,
    admin_staff,
    api,
    errors,
    feeds,
    health,
    mailpages,
    pages,
    widget,
)
from server.auth import EditTokens
from server.cors import CORS
from server.discussion import Discussion
from server.notifications import MailPlugin
from server.ratelimit import PostLimiter
from server.settings import Settings, load
from server.templates import Templates
from server.threadcache import ThreadCache

log = logging.getLogger("kibitz")


@dataclass
class State:
    """Everything a request handler may use; built once per process in ``lifespan``."""

    settings: Settings
    db: Database
    comments: CommentStore
    posts: PostStore
    staff: StaffStore
    discussion: Discussion
    templates: Templates
    edit_tokens: EditTokens
    cache: ThreadCache
    background: list[asyncio.Task[None]] = field(default_factory=list)
    extras: dict[str, object] = field(default_factory=dict)


def state_of(conn: HTTPConnection) -> State:
    return conn.app.state.kibitz  # type: ignore[no-any-return]


async def _housekeeping(state: State) -> None:
    """Erase old client addresses and prune old events, hourly, surviving any error."""
    settings = state.settings
    while True:
        try:
            erased = await state.comments.erase_addresses(
                now() - timedelta(days=settings.address_retention_days))
            pruned = await state.comments.prune_events(
                now() - timedelta(days=settings.event_retention_days))
            if erased or pruned:
                log.info("housekeeping: erased %d addresses, pruned %d events", erased, pruned)
        except Exception:
            log.exception("housekeeping failed; trying again in an hour")
        await asyncio.sleep(3600)


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = await connect(settings.database_url)
        await migrate(db)
        comments, staff = CommentStore(db), StaffStore(db)
        limiter = PostLimiter(settings.post_rate, settings.redis_url, settings.redis_prefix)
        state = State(
            settings=settings, db=db, comments=comments, posts=PostStore(db), staff=staff,
            discussion=Discussion(settings, comments, staff, limiter),
            templates=Templates(settings), edit_tokens=EditTokens(settings.secret_key,
                                                                  settings.edit_window),
            cache=ThreadCache(),
        )
        app.state.kibitz = state
        for plugin in app.state.plugins:
            await plugin.start(state)
        state.background.append(asyncio.create_task(_housekeeping(state)))
        try:
            yield
        finally:
            for task in state.background:
                task.cancel()
            await asyncio.gather(*state.background, return_exceptions=True)
            for plugin in reversed(app.state.plugins):
                await plugin.stop(state)
            await db.close()

    routes = [
        *pages.routes,
        *api.routes,
        *health.routes,
        *feeds.routes,
        *mailpages.routes,
        *live_endpoint.routes,
        *admin_login.routes, *admin_queue.routes, *admin_staff.routes,
        *widget.routes,
        Mount("/static", StaticFiles(packages=[("web", "static")]), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=errors.handlers(),
                    middleware=[Middleware(CORS, settings=settings),
                                Middleware(admin.AdminHeaders)])
    app.state.plugins = [admin.AdminPlugin(), LivePlugin(app), MailPlugin(), widget.Widget()]
    return app


def from_environment() -> Starlette:
    """The factory uvicorn workers call: settings are read here, once per process."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = create_app(load())
    app.state.tune_gc = True  # a long-running server process: see realtime.plugin
    return app

