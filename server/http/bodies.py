"""JSON in and out: request bodies read with a hard size cap before anything parses them,
and the compact UTF-8 JSON every API answer is."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from server.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from server.i18n import N_

MAX_BODY = 64 * 1024
# No request kibitz understands nests more than a few levels; 32 leaves room, and refusing
# deeper bodies keeps every later walk over the value far from Python's recursion limit.
MAX_DEPTH = 32


def encode_json(body: Any) -> bytes:
    """Compact JSON, non-ASCII kept as UTF-8: every API answer, cached ones included."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """An API answer (:func:`encode_json`)."""
    return Response(
        encode_json(body),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def read_capped(request: Request, limit: int = MAX_BODY) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge()
    return bytes(body)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object: 415 for another type, 413 past 64 KiB, 400 if malformed."""
    if _media_type(request) != "application/json":
        raise UnsupportedMediaType()
    raw = await read_capped(request)
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(N_("The body is not valid JSON.")) from None
    except RecursionError:
        raise BadRequest(N_("The body is nested too deeply.")) from None
    if _depth(data) > MAX_DEPTH:
        raise BadRequest(N_("The body is nested too deeply."))
    if not isinstance(data, dict):
        raise BadRequest(N_("The body must be a JSON object."))
    return data


def _no_constant(name: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (RFC 8259), though Python reads them."""
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form: the last value of each field wins."""
    if _media_type(request) != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType(N_("Send the form as application/x-www-form-urlencoded."))
    raw = await read_capped(request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(N_("The form is not UTF-8 text.")) from None
    return dict(parse_qsl(text, keep_blank_values=True))
