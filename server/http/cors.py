"""Cross-origin access to the JSON API, for the embedding sites in KIBITZ_ALLOWED_ORIGINS only.

The same list (plus the site's own origin) decides who may post and who may open the live
channel (``server/http/origins.py``), so the three never disagree. ``GET /api/config`` answers
anyone: it is public, and a widget on a site that is not allowed reads ``origin_allowed``
from it to tell the reader why there are no comments instead of showing a blank box.
Credentials are never allowed cross-origin: the widget uses edit tokens, not cookies.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.http import origins
from server.settings import Settings

METHODS = "GET, POST, PATCH, DELETE"
HEADERS = "Content-Type, Authorization, X-CSRF-Token, Idempotency-Key, Accept-Language"
# What a script on another origin may read of an answer (retries, replays, stale reads).
EXPOSED = "Retry-After, Idempotency-Replayed, Kibitz-Stale"
PUBLIC_PATHS = frozenset({"/api/config"})


class CORS:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = origins.allowed(self.settings, HTTPConnection(scope), origin)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            if not allowed:
                await PlainTextResponse(
                    "This origin may not use kibitz's API.", 403, headers={"Vary": "Origin"}
                )(scope, receive, send)
                return
            await PlainTextResponse(
                "",
                204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": METHODS,
                    "Access-Control-Allow-Headers": HEADERS,
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )(scope, receive, send)
            return
        grant = origin if allowed else ("*" if scope["path"] in PUBLIC_PATHS else None)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out.add_vary_header("Origin")
                if grant is not None:
                    out["Access-Control-Allow-Origin"] = grant
                    out["Access-Control-Expose-Headers"] = EXPOSED
            await send(message)

        await self.app(scope, receive, send_with_cors)
