"""Security headers on every HTTP response: pages, API JSON, feeds, widget assets, errors.

One ASGI middleware, outermost, so nothing answers without it (error responses and 404s
included). It only adds a header a response does not carry already: the admin's stricter
policy (``server.admin.guard.AdminHeaders``) and the mail pages' ``no-referrer`` stay.

* ``X-Content-Type-Options: nosniff`` and a ``Referrer-Policy`` everywhere.
* HTML (kibitz's own pages, error pages): a ``Content-Security-Policy`` allowing scripts,
  styles and connections only from this site and its live channel, and framing only by this
  site (``frame-ancestors 'self'``, with ``X-Frame-Options: SAMEORIGIN`` for old browsers).
* Everything else (JSON, Atom, JavaScript, CSS): ``default-src 'none'; frame-ancestors
  'none'``. A policy on a script or a JSON answer binds nothing that loads it, so the widget's
  ``embed.js`` and the cross-origin ``/api/*`` keep working on host pages;
  ``Cross-Origin-Resource-Policy: cross-origin`` on widget assets stays as the widget sets it.
* ``Strict-Transport-Security`` when the public URL is https.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.settings import Settings

HSTS = b"max-age=31536000"
REFERRER_POLICY = b"strict-origin-when-cross-origin"
NOT_A_PAGE = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


def page_policy(scope: Scope) -> str:
    """The CSP of kibitz's own HTML pages: only this site and its live channel."""
    connect = ["'self'"]
    host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1")
    if host:
        connect += [f"ws://{host}", f"wss://{host}"]
    app = scope.get("app")
    state = getattr(getattr(app, "state", None), "kibitz", None)
    live = getattr(state, "live_url", "") or ""
    if live.startswith(("ws://", "wss://")):
        origin = live.split("/", 3)[:3]
        connect.append("/".join(origin))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
        f"connect-src {' '.join(dict.fromkeys(connect))}; form-action 'self'; "
        "frame-ancestors 'self'; base-uri 'none'; object-src 'none'"
    )


class SecurityHeaders:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.https = settings.https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        mail = scope["path"].startswith("/mail/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                html = content_type.startswith(b"text/html")
                wanted = [
                    (b"x-content-type-options", b"nosniff"),
                    # Mail links carry their token in the URL: never pass it on, errors too.
                    (b"referrer-policy", b"no-referrer" if mail else REFERRER_POLICY),
                    (
                        b"content-security-policy",
                        page_policy(scope).encode() if html else NOT_A_PAGE,
                    ),
                ]
                if html:
                    wanted.append((b"x-frame-options", b"SAMEORIGIN"))
                if self.https:
                    wanted.append((b"strict-transport-security", HSTS))
                headers += [(k, v) for k, v in wanted if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
