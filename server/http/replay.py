"""Answers given again, as they were sent, while what they were made from stands.

A thread read or a counts question costs one indexed read of versions, and around it the
whole ASGI stack: five middleware layers, the router, a ``Request``, a ``Response``, header
lists, about two thirds of the CPU of such an answer. A route whose answer depends only on
the request's target, its headers and a version it can read again says so with
:func:`allow`: the version its body was made at, and a coroutine that reads the version now.

The HTTP protocol (``server/http/protocol.py``) then keeps that ``200`` answer, as the ASGI
messages the application sent (every middleware's headers included), under the request's
method, target and headers. The next request asking the same runs only the check; when the
version is still the same, the kept messages go out through uvicorn's own response cycle
(a fresh ``Date``, keep-alive, flow control). Anything else (another version, a check that
raises because the database is down) goes through the application as usual.

Nothing is trusted that was not read: the check is the same indexed read the route itself
makes first, so an answer given again is exactly as fresh as one made anew. Two refinements:

* a *mark*, where the storage has a cheap one (SQLite's ``data_version``, which moves with
  every commit of any connection; on PostgreSQL the change notices of every process's
  commits, ``db/notices.py``; with this process's vote count beside either): while it has
  not moved since the last check, nothing the check reads can have changed, and the check
  is skipped;
* a *hole*, for an answer with one per-request value (the post page's one-use form token):
  the kept body is cut at that value and each answer joins the parts around a fresh one.

A kept answer is also given gzipped to a request that accepts gzip (every browser does),
compressed the first time one asks and kept beside it (``server/http/gzipped.py``); such
answers, as the application first makes them too, say ``Vary: Accept-Encoding``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from server.http import gzipped
from server.lru import LRU

SCOPE_KEY = "kibitz.replay"
STATE_KEY = "kibitz.replays"

# Request headers that cannot change such an answer; every other header is part of the key,
# so a request that differs in any of them is answered by the application.
IGNORED_HEADERS = frozenset(
    {
        b"user-agent",
        b"accept",
        b"accept-encoding",  # asked per request: see accepts_gzip
        b"accept-language",  # answers in a language are errors, never kept
        b"referer",
        b"connection",
        b"cache-control",
        b"pragma",
        b"dnt",
        b"priority",
        b"x-forwarded-for",  # reads use no client address
        b"x-real-ip",
        b"sec-fetch-site",
        b"sec-fetch-mode",
        b"sec-fetch-dest",
        b"sec-ch-ua",
        b"sec-ch-ua-mobile",
        b"sec-ch-ua-platform",
    }
)

Check = Callable[[], Awaitable[Hashable]]
Mark = Callable[[], Hashable]


@dataclass(frozen=True)
class Hole:
    """A per-request value in an answer: ``value`` as this answer has it, ``fresh`` makes
    another of the same length."""

    value: str
    fresh: Callable[[], str]


@dataclass(frozen=True)
class Replayable:
    """What a route said about its answer: made at ``version``; ``check`` reads it anew."""

    version: Hashable
    check: Check
    mark: Mark | None = None
    hole: Hole | None = None


@dataclass(frozen=True, slots=True)
class Gzipped:
    """A kept answer's gzipped form: its start message, and its body whole or around a hole."""

    start: dict[str, Any]
    body: bytes = b""
    around: gzipped.Around | None = None

    @property
    def size(self) -> int:
        return len(self.body) + (len(self.around.head) if self.around is not None else 0)


@dataclass(slots=True)
class Kept:
    """A kept answer: the ASGI messages as the application sent them, and their version.

    ``marked`` is the storage's mark read before the last check that found ``version``
    standing; while the mark is the same, nothing has been committed since.
    """

    start: dict[str, Any]
    body: dict[str, Any]
    allowed: Replayable
    parts: tuple[bytes, bytes] | None = None  # the body cut at the hole
    marked: Hashable | None = None
    # The check that requests arriving now wait for; it has not begun (see Replays.stands).
    next_check: asyncio.Future[bool] | None = None
    compressible: bool = False  # worth gzipping (its Vary says so since its first answer)
    gzipped: Gzipped | None = None  # made when a request first accepts gzip

    @property
    def size(self) -> int:
        zipped = self.gzipped.size if self.gzipped is not None else 0
        return len(self.body.get("body", b"")) + zipped

    @property
    def hole_size(self) -> int:
        """The length of the value between the parts (0 without a hole)."""
        if self.parts is None:
            return 0
        return len(self.body.get("body", b"")) - len(self.parts[0]) - len(self.parts[1])

    def messages(self, gzip: bool = False) -> list[dict[str, Any]] | None:
        """The answer to send now, gzipped if asked and made (:meth:`Replays.gzip`): as
        kept, or around a fresh value; uncompressed, in three body pieces that are not copied
        together (they leave in one vectored write). None if the fresh value's length moved."""
        zipped = self.gzipped if gzip else None
        hole = self.allowed.hole
        if self.parts is None or hole is None:
            if zipped is not None:
                return [zipped.start, {"type": "http.response.body", "body": zipped.body}]
            return [self.start, self.body]
        fresh = hole.fresh().encode()
        if len(fresh) != self.hole_size:
            return None  # the Content-Length sent would be wrong
        before, after = self.parts
        if zipped is not None and zipped.around is not None:  # small: one piece
            body = b"".join(zipped.around.around(fresh))
            return [zipped.start, {"type": "http.response.body", "body": body}]
        return [
            self.start,
            {"type": "http.response.body", "body": before, "more_body": True},
            {"type": "http.response.body", "body": fresh, "more_body": True},
            {"type": "http.response.body", "body": after},
        ]

    def gzip(self) -> Gzipped:
        """This answer gzipped (compressing it: a millisecond or so for a large page)."""
        if self.parts is not None:
            around = gzipped.Around.of(*self.parts, self.hole_size)
            return Gzipped(_gzip_start(self.start, around.size), around=around)
        body = gzipped.compress(self.body.get("body", b""))
        return Gzipped(_gzip_start(self.start, len(body)), body=body)


def _gzip_start(start: dict[str, Any], length: int) -> dict[str, Any]:
    headers = [
        (name, value)
        for name, value in start.get("headers", [])
        if name.lower() not in (b"content-length", b"content-encoding")
    ]
    headers += [(b"content-encoding", b"gzip"), (b"content-length", str(length).encode())]
    return {**start, "headers": headers}


def _content_type(start: Mapping[str, Any]) -> bytes:
    for name, value in start.get("headers", []):
        if name.lower() == b"content-type":
            return bytes(value)
    return b""


def _length(start: Mapping[str, Any]) -> int:
    for name, value in start.get("headers", []):
        if name.lower() == b"content-length":
            return int(value)
    return 0


def _with_vary(start: dict[str, Any]) -> dict[str, Any]:
    """``start`` saying that its answer depends on Accept-Encoding."""
    headers = list(start.get("headers", []))
    for i, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            if b"accept-encoding" not in value.lower():
                headers[i] = (name, value + b", Accept-Encoding")
            break
    else:
        headers.append((b"vary", b"Accept-Encoding"))
    return {**start, "headers": headers}


def accepts_gzip(scope: Mapping[str, Any]) -> bool:
    """Whether the request's Accept-Encoding takes gzip (:func:`gzipped.takes_gzip`)."""
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            return gzipped.takes_gzip(value)
    return False


def allow(
    request: Request,
    version: Hashable,
    check: Check,
    *,
    mark: Mark | None = None,
    hole: Hole | None = None,
) -> None:
    """Let the protocol give this answer again while ``await check()`` equals ``version``.

    Only for answers that depend on nothing else of the request than its target and the
    headers :data:`IGNORED_HEADERS` does not name (no client address), and, with ``hole``,
    one value that ``hole.fresh`` makes anew. ``mark``, where given, must move whenever
    anything ``check`` reads may have changed.
    """
    request.scope[SCOPE_KEY] = Replayable(version, check, mark, hole)


def request_key(scope: Mapping[str, Any]) -> Hashable:
    """Everything of a GET request its answer may depend on."""
    headers = tuple(
        (name, value) for name, value in scope["headers"] if name not in IGNORED_HEADERS
    )
    return (scope["raw_path"], scope["query_string"], scope["scheme"], headers)


class Replays:
    """Kept answers, least recently used first out, bounded in count and in bytes."""

    def __init__(self, capacity: int = 2048, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.largest = max_bytes // 64  # a bigger answer is not kept
        self.paths: set[bytes] = set()  # paths that have asked for replay at least once
        self._kept: LRU[Hashable, Kept] = LRU(capacity, max_bytes=max_bytes, size=_size)
        self.given = 0  # answers given again, for /api/diagnostics
        self.checked = 0  # reads made to check a kept answer, likewise
        self.gzipped = 0  # kept answers compressed, likewise
        self._checks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, key: Hashable) -> Kept | None:
        return self._kept.get(key)

    def put(self, key: Hashable, kept: Kept) -> None:
        # The answer's own size decides; its gzipped form, a tenth of it, never drops it.
        if len(kept.body.get("body", b"")) <= self.largest:
            self._kept.put(key, kept)

    def gzip(self, key: Hashable, kept: Kept) -> None:
        """Make ``kept``'s gzipped form and keep it, counted in the bound on bytes."""
        if kept.gzipped is not None or not kept.compressible:
            return
        held = self._kept.peek(key) is kept
        if held:
            self._kept.pop(key)  # its size changes: out, then in again
        kept.gzipped = kept.gzip()
        self.gzipped += 1
        if held:
            self.put(key, kept)

    def drop(self, key: Hashable, kept: Kept | None = None) -> None:
        """Forget ``key``'s answer (only if it is still ``kept``, when given)."""
        old = self._kept.peek(key)
        if old is not None and (kept is None or old is kept):
            self._kept.pop(key)

    async def stands(self, kept: Kept) -> bool:
        """Whether ``kept``'s version still stands, checked after this request arrived.

        While the storage's mark has not moved since a check found the version standing,
        nothing was committed since: no check. Else requests asking at once share one
        check, as a group commit shares a flush: each joins the next check that has not
        begun, so every answer is checked by a read that started after its request came.
        """
        allowed = kept.allowed
        mark = allowed.mark() if allowed.mark is not None else None
        if mark is not None and mark == kept.marked:
            return True
        waiting = kept.next_check
        if waiting is None:
            loop = asyncio.get_running_loop()
            waiting = kept.next_check = loop.create_future()
            self.checked += 1
            task = loop.create_task(_check(kept, waiting))
            self._checks.add(task)  # a task nobody holds may be collected mid-way
            task.add_done_callback(self._checks.discard)
        if not await asyncio.shield(waiting):
            return False
        kept.marked = mark  # read before the check began: a commit since moves it
        return True


def _size(kept: Kept) -> int:
    return kept.size


async def _check(kept: Kept, done: asyncio.Future[bool]) -> None:
    if kept.next_check is done:
        kept.next_check = None  # requests arriving from now on wait for the next check
    try:
        same = await kept.allowed.check() == kept.allowed.version
    except Exception:  # the application will say what is wrong
        same = False
    if not done.done():
        done.set_result(same)


class Recorder:
    """Stands in for a response cycle's ``send`` and keeps a copy of what passes through.

    An answer its route allows to be given again, of a type worth compressing, leaves saying
    ``Vary: Accept-Encoding``: the same answer may later be given gzipped.
    """

    def __init__(self, send: Callable[[Any], Awaitable[None]], scope: Mapping[str, Any]) -> None:
        self._send = send
        self._scope = scope
        self._compressible = False
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: Any) -> None:
        if (
            message.get("type") == "http.response.start"
            and message.get("status") == 200
            and isinstance(self._scope.get(SCOPE_KEY), Replayable)
            and gzipped.compressible(_content_type(message), _length(message))
        ):
            message = _with_vary(message)
            self._compressible = True
        self.messages.append(message)
        await self._send(message)

    def kept(self) -> Kept | None:
        """The answer to keep: a ``200`` in one body message that its route allowed."""
        allowed = self._scope.get(SCOPE_KEY)
        if not isinstance(allowed, Replayable) or len(self.messages) != 2:
            return None
        start, body = self.messages
        if (
            start.get("type") != "http.response.start"
            or start.get("status") != 200
            or body.get("type") != "http.response.body"
            or body.get("more_body", False)
            # A cookie is one reader's: never hand it to the next.
            or any(name.lower() == b"set-cookie" for name, _ in start.get("headers", []))
        ):
            return None
        kept = Kept(start, body, allowed, compressible=self._compressible)
        if allowed.hole is not None:
            value = allowed.hole.value.encode()
            parts = body.get("body", b"").split(value)
            if len(parts) != 2 or any(value in v for _, v in start.get("headers", [])):
                return None  # not exactly once, in the body: never give it again
            kept.parts = (parts[0], parts[1])
        return kept
