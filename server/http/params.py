"""Query and path parameters, read the same way by every route: the one copy of each rule.

``?uri=`` names a thread for the JSON API, the thread feed and the live channel; a missing one
is the same 400 everywhere. Numbers (ids, pages, cursors) are read by :func:`integer`, so a
non-number is never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping

from server.discussion.uris import normalise_uri
from server.errors import BadRequest

URI_REQUIRED = "Give the thread as ?uri=/path/of/the/page."


def required_uri(query: Mapping[str, str]) -> str:
    """The thread's ``?uri=``, normalised; a 400 naming the parameter when it is missing."""
    uri = query.get("uri")
    if not uri:
        raise BadRequest(URI_REQUIRED, fields={"uri": "This is required."})
    return normalise_uri(uri)


def integer(
    raw: str | None, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    """``raw`` as a whole number within the bounds, else None (the caller decides whether that
    means a default page, a 404 or a reset).

    ASCII digits only and at most 18 of them: ``str.isdigit`` also accepts "²", which ``int``
    refuses, and a longer number would not fit the databases' 64-bit integers.
    """
    if raw is None:
        return None
    digits = raw[1:] if raw.startswith("-") else raw
    if not (digits.isascii() and digits.isdigit() and len(digits) < 19):
        return None
    value = int(raw)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        return None
    return value


def ids(values: list[str]) -> list[int]:
    """The positive whole numbers among ``values`` (selected comments), in order, once each."""
    found = (integer(v, minimum=1) for v in values)
    return list(dict.fromkeys(v for v in found if v is not None))
