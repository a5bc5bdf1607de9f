"""Staff sessions for the admin: the cookie, expiry, and the CSRF token that guards them.

The cookie holds a random token; the server keeps its hash with an expiry
(``KIBITZ_SESSION_HOURS``), so logout and expiry end a session everywhere at once. The CSRF
token is an HMAC of the session token: pages can put it in ``<meta name="csrf-token">``
without a database read, and it dies with the session.

Every unsafe request made with the session must carry the CSRF token (form field
``csrf_token`` or header ``X-CSRF-Token``): :meth:`Sessions.staff` refuses it with 403
otherwise, so the JSON API is protected by the same rule as the admin forms.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from starlette.requests import HTTPConnection
from starlette.responses import Response

from db.models import StaffMember, now
from db.sessions import Session, SessionStore
from server.errors import Forbidden
from server.http import origins
from server.i18n import N_
from server.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SESSION_KEY = "kibitz.session"  # the session found for this request, cached in its scope
_CSRF_OK_KEY = "kibitz.csrf_ok"  # set once a form field carried the right token


class Sessions:
    def __init__(self, settings: Settings, store: SessionStore) -> None:
        self.settings = settings
        self.store = store
        # __Host- makes browsers refuse the cookie unless it is Secure, host-only and for /.
        self.cookie = "__Host-kibitz_session" if settings.https else "kibitz_session"
        self.lifetime = timedelta(hours=settings.session_hours)

    # -- the cookie ------------------------------------------------------------------------

    async def open(self, response: Response, staff: StaffMember, address: str | None) -> None:
        token = secrets.token_urlsafe(32)
        await self.store.open(token, staff.id, now() + self.lifetime, address)
        response.set_cookie(
            self.cookie,
            token,
            max_age=int(self.lifetime.total_seconds()),
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.settings.https,
        )

    async def close(self, conn: HTTPConnection, response: Response) -> None:
        token = conn.cookies.get(self.cookie)
        if token:
            await self.store.close(token)
        response.delete_cookie(
            self.cookie, path="/", httponly=True, samesite="lax", secure=self.settings.https
        )

    async def session(self, conn: HTTPConnection) -> Session | None:
        """The live session behind this request's cookie, looked up once per request."""
        if _SESSION_KEY not in conn.scope:
            token = conn.cookies.get(self.cookie)
            conn.scope[_SESSION_KEY] = await self.store.get(token) if token else None
        session: Session | None = conn.scope[_SESSION_KEY]
        return session

    # -- CSRF ------------------------------------------------------------------------------

    def csrf_token(self, conn: HTTPConnection) -> str | None:
        """The CSRF token for this request's session cookie (None without a cookie)."""
        token = conn.cookies.get(self.cookie)
        if not token:
            return None
        return hmac.new(
            self.settings.secret_key.encode(), b"kibitz.csrf:" + token.encode(), hashlib.sha256
        ).hexdigest()

    def _valid(self, conn: HTTPConnection, sent: str | None) -> bool:
        expected = self.csrf_token(conn)
        return bool(expected and sent) and hmac.compare_digest(expected or "", sent or "")

    async def check_form(self, conn: HTTPConnection, form: dict[str, str]) -> None:
        """Refuse an unsafe request made with a session unless it carries the CSRF token."""
        if await self.session(conn) is None:
            return
        sent = form.get("csrf_token") or conn.headers.get("x-csrf-token")
        if not self._valid(conn, sent):
            raise Forbidden(
                N_(
                    "This form has expired or did not come from this site. "
                    "Reload the page and try again."
                )
            )
        conn.scope[_CSRF_OK_KEY] = True

    # -- who is asking ---------------------------------------------------------------------

    async def staff(self, conn: HTTPConnection) -> StaffMember | None:
        """The staff member behind the session, or None; 403 for an unsafe request without
        the CSRF token, None for a websocket opened from another origin."""
        session = await self.session(conn)
        if session is None:
            return None
        if conn.scope["type"] == "websocket":
            # Browsers send cookies on cross-site websocket handshakes; only our own pages
            # may use the session there. The same host on another port counts as ours: the
            # live channel may be served on a port of its own (--live-port).
            origin = conn.headers.get("origin")
            if origin is not None and not (
                origins.allowed_own(self.settings, conn, origin) or origins.same_host(conn, origin)
            ):
                return None
            return session.staff
        if conn.scope.get("method", "GET") not in SAFE_METHODS and not conn.scope.get(_CSRF_OK_KEY):
            if not self._valid(conn, conn.headers.get("x-csrf-token")):
                raise Forbidden(
                    N_(
                        "Send the page's CSRF token as header X-CSRF-Token "
                        '(from <meta name="csrf-token">).'
                    )
                )
            conn.scope[_CSRF_OK_KEY] = True
        return session.staff
