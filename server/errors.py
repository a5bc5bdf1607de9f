"""The errors kibitz raises on purpose, and the one place they become HTTP responses.

    KibitzError                 500, the root: anything we raise deliberately
    ├── BadRequest              400  malformed JSON, a bad query parameter
    ├── Unauthorized            401  no credentials (API)
    ├── Forbidden               403  an Origin, role, token or window that does not allow it
    │   └── CommentsClosed      403  the thread takes no new comments
    ├── NotFound                404
    ├── Conflicting             409  e.g. an Idempotency-Key reused with another body
    ├── PayloadTooLarge         413
    ├── UnsupportedMediaType    415
    ├── Outdated                409  what was acted on changed since the caller saw it
    ├── ValidationFailed        422  carries a message per field
    ├── RateLimited             429  carries Retry-After
    └── ServiceUnavailable      503  the database is unreachable; carries Retry-After
        └── StorageRefused      503  the database answers but its storage refuses writes
    ConfigError                      a setting is wrong; printed at start, never served

The domain (``server.discussion``) raises its own errors, which know nothing of HTTP;
:data:`DOMAIN_ANSWERS` below is the one table that picks the HTTP error answering each.
Database errors (``db.errors``) are translated here too, so handlers never see driver types:
:func:`unavailable` picks the 503 for an unreachable database or a storage that refuses
writes (full disk, read-only data directory), for the API and the form alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from db.errors import StorageUnavailable, Unavailable
from server.discussion.errors import (
    Changed,
    DiscussionError,
    InvalidInput,
    Limited,
    NotAllowed,
    UnknownComment,
)
from server.i18n import N_, asked_language, localise

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ExceptionHandler


class KibitzError(Exception):
    status = 500
    message = N_("Something went wrong on our side.")

    def __init__(self, message: str | None = None, fields: Mapping[str, str] | None = None) -> None:
        self.message = message or self.message
        self.fields = dict(fields or {})
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"error": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body


class BadRequest(KibitzError):
    status = 400
    message = N_("The request could not be understood.")


class Unauthorized(KibitzError):
    status = 401
    message = N_("Sign in, or send an API token as 'Authorization: Bearer …'.")


class Forbidden(KibitzError):
    status = 403
    message = N_("You may not do that.")


class CommentsClosed(Forbidden):
    message = N_("Comments are closed on this page.")


class NotFound(KibitzError):
    status = 404
    message = N_("Not found.")


class Conflicting(KibitzError):
    status = 409
    message = N_("That conflicts with something that exists already.")


class PayloadTooLarge(KibitzError):
    status = 413
    message = N_("The request body is larger than 64 KiB.")


class UnsupportedMediaType(KibitzError):
    status = 415
    message = N_("Send the body as application/json.")


class ValidationFailed(KibitzError):
    status = 422
    message = N_("Some fields need attention.")


class Outdated(KibitzError):
    """The thing acted on changed since the caller saw it (a moderator approving an old text)."""

    status = 409


class RateLimited(KibitzError):
    status = 429
    message = N_("Too many comments from your address. Please wait a little and try again.")

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


# Seconds a client is asked to wait (Retry-After) while the database is unreachable: a
# PostgreSQL restart after a crash takes about this long (docs/reliability.md).
UNAVAILABLE_RETRY_AFTER = 5


class ServiceUnavailable(KibitzError):
    """The database cannot take the request now; nothing was stored. Carries Retry-After."""

    status = 503
    message = N_(
        "The database is not reachable right now. Please try again in a moment; "
        "nothing you typed was saved."
    )
    # What the form says above the fields it gives back (everything typed is kept).
    form_message = N_(
        "The database is not reachable right now. Everything you typed is still here: send it "
        "again in a moment (it will not be posted twice)."
    )
    retry_after = UNAVAILABLE_RETRY_AFTER


class StorageRefused(ServiceUnavailable):
    """The database answers (reads work) but cannot store anything: full or read-only disk."""

    message = N_(
        "Comments cannot be saved right now: the server's storage is full or read-only. "
        "Please try again in a moment; nothing you typed was saved."
    )
    form_message = N_(
        "Comments cannot be saved right now: the server's storage is full or read-only. "
        "Everything you typed is still here: send it again in a moment (it will not be "
        "posted twice)."
    )


def unavailable(error: Unavailable) -> ServiceUnavailable:
    """The 503 answering a database that cannot take a request (the one place that picks)."""
    return StorageRefused() if isinstance(error, StorageUnavailable) else ServiceUnavailable()


class ConfigError(Exception):
    """A setting has a value kibitz cannot use; the message names the variable and the fix."""

    def __init__(self, name: str, value: str, expected: str) -> None:
        self.name, self.value, self.expected = name, value, expected
        super().__init__(f"{name}={value!r} is not valid: expected {expected}.")


# -- the one place errors become responses ------------------------------------------------------

# The domain's refusals and the HTTP error that answers each (its status, same message/fields).
DOMAIN_ANSWERS: dict[type[DiscussionError], type[KibitzError]] = {
    InvalidInput: ValidationFailed,  # 422
    NotAllowed: Forbidden,  # 403
    UnknownComment: NotFound,  # 404
    Changed: Outdated,  # 409
    Limited: RateLimited,  # 429
    DiscussionError: Forbidden,  # 403, any other refusal
}


def answer(error: DiscussionError) -> KibitzError:
    """The HTTP error for a refusal of the domain, carrying its message and fields."""
    for kind in type(error).__mro__:
        answer_type = DOMAIN_ANSWERS.get(kind)
        if answer_type is RateLimited:
            assert isinstance(error, Limited)
            return RateLimited(error.retry_after, error.message)
        if answer_type is not None:
            return answer_type(error.message, error.fields)
    raise AssertionError("DiscussionError is in DOMAIN_ANSWERS")


def _wants_html(request: Request) -> bool:
    path = request.url.path
    return not (path.startswith("/api/") or path.startswith("/feeds/") or path == "/healthz")


def handlers() -> dict[type[Exception], ExceptionHandler]:
    """Starlette exception handlers: JSON for the API, a rendered page for people."""
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse

    from db.errors import Conflict, DatabaseError, InvalidValue

    def render(
        request: Request, error: KibitzError, headers: dict[str, str] | None = None
    ) -> Response:
        headers = dict(headers or {})
        if isinstance(error, RateLimited | ServiceUnavailable):
            headers["Retry-After"] = str(error.retry_after)
        if _wants_html(request):
            from server.state import state_of

            state = state_of(request)
            return state.templates.response(
                request, "error.html", {"error": error}, status_code=error.status, headers=headers
            )
        body = localise(error.body(), asked_language(request.headers.get("accept-language")))
        return JSONResponse(body, status_code=error.status, headers=headers)

    async def kibitz_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, KibitzError)
        return render(request, exc)

    async def domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DiscussionError)
        return render(request, answer(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error = {404: NotFound(), 405: KibitzError(N_("This method is not allowed here."))}.get(
            exc.status_code, KibitzError(exc.detail)
        )
        error.status = exc.status_code
        return render(request, error)

    async def database_error(request: Request, exc: Exception) -> Response:
        import logging

        if isinstance(exc, Conflict):
            error = KibitzError(N_("That conflicts with something that exists already."))
            error.status = 409
        elif isinstance(exc, InvalidValue):
            # The driver refused a value a client sent: the client's mistake, not ours.
            logging.getLogger("kibitz").warning("refused a value the database cannot take: %s", exc)
            error = BadRequest()
        elif isinstance(exc, Unavailable):
            error = unavailable(exc)
        else:
            logging.getLogger("kibitz").exception("database error")
            error = KibitzError()
        return render(request, error)

    return {
        KibitzError: kibitz_error,
        DiscussionError: domain_error,
        HTTPException: http_error,
        DatabaseError: database_error,
    }
