"""Query and path parameters, read the same way by every route: the one copy of each rule.

``?uri=`` names a thread for the JSON API, the thread feed and the live channel; a missing or
unreadable one is the same 400 everywhere. Numbers (ids, pages, cursors) are read by
:func:`integer`, so a non-number is never a 500. ``{id:int}`` in a route matches only ids the
database can hold (see :class:`IdConvertor`). Every value goes through the boundary in
server/discussion/values.py.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.convertors import Convertor, register_url_convertor

from server.discussion import values
from server.discussion.errors import InvalidInput
from server.discussion.values import MAX_ID
from server.errors import BadRequest

URI_REQUIRED = "Give the thread as ?uri=/path/of/the/page."


def query_uri(value: str) -> str:
    """A thread key from a query string: a bad one is a 400, like any bad query parameter."""
    try:
        return values.thread_uri(value)
    except InvalidInput as exc:
        raise BadRequest(URI_REQUIRED, fields=exc.fields) from None


def required_uri(query: Mapping[str, str]) -> str:
    """The thread's ``?uri=``, normalised; a 400 naming the parameter when it is missing or
    names no thread (``http://[::1``, a host that changes under NFKC, lone surrogates)."""
    uri = query.get("uri")
    if not uri:
        raise BadRequest(URI_REQUIRED, fields={"uri": "This is required."})
    return query_uri(uri)


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


def ids(raw: list[str]) -> list[int]:
    """The positive whole numbers among ``raw`` (selected comments), in order, once each."""
    found = (values.id_or_none(v) for v in raw)
    return list(dict.fromkeys(v for v in found if v is not None))


# -- path parameters -------------------------------------------------------------------------


def bounded_digits(limit: int) -> str:
    """A regular expression for the decimal numbers 0 … ``limit`` (no sign, leading zeros ok).

    Shorter numbers match freely; a number as long as ``limit`` must be, digit by digit,
    no larger: the usual construction "equal prefix, then a smaller digit, then anything".
    """
    top = str(limit)
    alternatives = [f"[0-9]{{1,{len(top) - 1}}}"] if len(top) > 1 else []
    for i, digit in enumerate(top):
        if digit != "0":
            rest = len(top) - i - 1
            tail = f"[0-9]{{{rest}}}" if rest else ""
            alternatives.append(f"{top[:i]}[0-{int(digit) - 1}]{tail}")
    alternatives.append(top)
    return "0*(?:" + "|".join(alternatives) + ")"


class IdConvertor(Convertor[int]):
    """``{id:int}``: Starlette's own matches any run of digits, so 400 digits reached the
    handler and then the driver (an OverflowError, a 500). This pattern accepts only
    0 … 2^63-1, so a longer or larger number matches no route: a plain 404."""

    regex = bounded_digits(MAX_ID)

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 0 <= value <= MAX_ID:
            raise ValueError("an id is a non-negative 64-bit integer")
        return str(value)


def register() -> None:
    """Make ``{name:int}`` in every route the bounded convertor (idempotent); the ``server``
    package calls this when imported, before any route is built."""
    register_url_convertor("int", IdConvertor())
