"""Which origins may embed kibitz, post to it and open its live channel."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from server.settings import Settings, origin_of


def own_origins(settings: Settings, conn: HTTPConnection) -> set[str]:
    """The public origin, and the origin of the listener the browser used (its Host)."""
    origins = {settings.public_origin}
    host = conn.headers.get("host")
    if host:
        scheme = "https" if conn.scope.get("scheme") in ("https", "wss") else "http"
        try:
            origins.add(origin_of(f"{scheme}://{host}"))
        except ValueError:
            pass
    return origins


def allowed(settings: Settings, conn: HTTPConnection, origin: str | None) -> bool:
    if origin is None:
        return True
    try:
        normalised = origin_of(origin)
    except ValueError:
        return False
    return normalised in settings.allowed_origins or normalised in own_origins(settings, conn)


def allowed_own(settings: Settings, conn: HTTPConnection, origin: str) -> bool:
    """True only for the site's own origins (not embedding sites): staff pages live there."""
    try:
        return origin_of(origin) in own_origins(settings, conn)
    except ValueError:
        return False


def same_host(conn: HTTPConnection, origin: str) -> bool:
    """True when ``origin`` names the host the browser connected to, on any port."""
    host = urlsplit("//" + conn.headers.get("host", "")).hostname
    return bool(host) and urlsplit(origin).hostname == host
