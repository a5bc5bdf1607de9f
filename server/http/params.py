"""Path and query parameters, read through the value boundary (server/discussion/values.py).

``{id:int}`` in a route matches only ids the database can hold.

Starlette's own ``int`` convertor matches any run of digits, so ``/api/comments/999…9``
(400 digits) reached the handler and then the driver, which refused the value with an
``OverflowError`` or ``DataError`` (a 500). Here the route's pattern itself accepts only
1 … 2^63-1, so a longer or larger number matches no route: a plain 404, before any handler
runs. This is registered when the ``server`` package is imported, before any route is built.
"""

from __future__ import annotations

from typing import Any

from starlette.convertors import Convertor, register_url_convertor

from server.discussion import values
from server.discussion.values import MAX_ID
from server.errors import BadRequest, ValidationFailed


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
    regex = bounded_digits(MAX_ID)

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 0 <= value <= MAX_ID:
            raise ValueError("an id is a non-negative 64-bit integer")
        return str(value)


def register() -> None:
    """Make ``{name:int}`` in every route the bounded convertor (idempotent)."""
    register_url_convertor("int", IdConvertor())


def query_uri(value: str) -> str:
    """A thread key from a query string: a bad one is a 400, like any bad query parameter."""
    try:
        return values.thread_uri(value)
    except ValidationFailed as exc:
        raise BadRequest("Give the thread as ?uri=/path/of/the/page.", fields=exc.fields) from None


def query_int(params: Any, name: str, *, low: int, high: int, default: int) -> int:
    """An integer query parameter (``?page=2``); anything else is a 400 naming it."""
    try:
        return values.parse_int(params.get(name), name, low=low, high=high, default=default)
    except ValidationFailed as exc:
        raise BadRequest(fields=exc.fields) from None
