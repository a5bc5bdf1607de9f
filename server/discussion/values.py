"""One boundary for each kind of value that comes from outside: ids, integers, thread uris,
web addresses, e-mail addresses, text and dates.

Every function here is total: it returns a clean value or raises :class:`InvalidInput`
naming the field, whatever it is given (any JSON value, any string, any number of digits).
Nothing else escapes -- no ``ValueError`` from ``int`` or ``urlsplit``, no ``OverflowError``
from a 400-digit id reaching the database driver, no ``UnicodeEncodeError`` from a lone
surrogate -- so a crafted request answers a clear 4xx instead of a 500. The HTTP routes, the
admin forms, the live channel and the importers all come through here.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from email_validator import EmailNotValidError, validate_email

from server.discussion.errors import InvalidInput
from server.i18n import N_

# Ids are BIGINT on PostgreSQL and INTEGER on SQLite: both hold 64-bit signed integers.
MAX_ID = 2**63 - 1
MAX_AUTHOR, MAX_EMAIL, MAX_WEBSITE, MAX_TEXT, MAX_TITLE = 100, 254, 500, 10_000, 300
# A thread key is stored in a unique index; PostgreSQL refuses index rows past ~2.7 kB.
MAX_URI = 2_000

_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))
_CONTROL[127] = None
# Every character that breaks a line somewhere (mail, logs, terminals); none fits in a name.
LINE_BREAKS = frozenset("\r\n\v\f\x85\u2028\u2029")
_LINE_BREAKS = dict.fromkeys((9, 10, 11, 12, 13, 0x85, 0x2028, 0x2029), " ")
_DIGITS = re.compile(r"[0-9]{1,19}")
# Characters that stay literal in a thread path (RFC 3986 pchar plus "/"); everything else is
# percent-encoded, so "%7E" and "~" or "%c3%a9" and "é" name the same thread.
_SAFE = "/:@!$&'()*+,;=-._~"
_SURROGATE_ESCAPES = dict.fromkeys(range(0xDC80, 0xDD00))


def _refuse(field: str, message: str) -> InvalidInput:
    return InvalidInput(fields={field: message})


# -- ids and integers ------------------------------------------------------------------------


def id_or_none(value: Any) -> int | None:
    """A positive 64-bit id from an int or a string of ASCII digits; None for anything else.

    For lookups where "no such id" and "not an id" mean the same thing (a 404, a skipped
    checkbox). ``"²"``, ``"1e20"``, ``True``, ``1.0`` and 400 digits are all None.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            return None
        value = int(value)
    if isinstance(value, int) and 0 < value <= MAX_ID:
        return value
    return None


def parse_id(value: Any, field: str, message: str = N_("This is not a valid id.")) -> int:
    """A positive 64-bit id, or :class:`InvalidInput` for ``field``."""
    found = id_or_none(value)
    if found is None:
        raise _refuse(field, message)
    return found


def parse_int(value: Any, field: str, *, low: int, high: int, default: int | None = None) -> int:
    """An integer in ``[low, high]`` from a JSON number or a query string's digits.

    A missing value (None or "") gives ``default`` when there is one. Floats, ``NaN``,
    ``Infinity``, exponents and Unicode digits are refused rather than rounded.
    """
    if value in (None, "") and default is not None:
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,19}", value):
        number = int(value)
    if number is None or not low <= number <= high:
        raise _refuse(field, N_("This must be a whole number in the allowed range."))
    return number


def is_finite_number(value: Any) -> bool:
    """A JSON number Python can compare safely (not a bool, not NaN or an infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


# -- text ------------------------------------------------------------------------------------


def has_lone_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def plain(value: str) -> str:
    """Lenient cleaning for lookups and searches: no control characters, no lone surrogates.

    A login name or a search term with a NUL simply finds nothing (PostgreSQL refuses NUL in
    text, SQLite and Python accept it: this makes both engines agree).
    """
    value = value.translate(_CONTROL)
    if has_lone_surrogate(value):
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def clean_text(
    value: Any,
    field: str,
    *,
    max_length: int,
    required: str | None = None,
    too_long: str | None = None,
    single_line: bool = False,
    line_break: str | None = None,
) -> str:
    """Text a person typed: NFC, no control characters, trimmed, at most ``max_length``.

    ``required`` is the message for an empty value (omit it to allow ""); ``single_line``
    turns CR, LF and the other line breaks into spaces (titles, addresses: they end up in mail
    headers and subjects); ``line_break`` is the message that refuses any line break instead
    (a commenter's name: a visible refusal beats a silently changed name).
    """
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _refuse(field, N_("This must be text."))
    if has_lone_surrogate(value):
        raise _refuse(field, N_("This contains characters that are not valid text."))
    if len(value) > 8 * max_length + 1000:  # not worth normalising: clearly too long
        raise _refuse(field, too_long or _too_long(max_length))
    if line_break is not None and any(c in LINE_BREAKS for c in value):
        raise _refuse(field, line_break)
    text = unicodedata.normalize("NFC", value.translate(_CONTROL))
    if single_line:
        text = text.translate(_LINE_BREAKS)
    text = text.strip()
    if not text and required:
        raise _refuse(field, required)
    if len(text) > max_length:
        raise _refuse(field, too_long or _too_long(max_length))
    return text


def _too_long(limit: int) -> str:
    return N_("This is too long.")


# -- thread uris -----------------------------------------------------------------------------


def thread_uri(value: Any, field: str = "uri") -> str:
    """A thread key: ``https://blog.example/a/b/?x=1#c`` → ``/a/b``; ``/a/`` and ``/a`` alike.

    Only the path counts. An address ``urlsplit`` cannot read (``http://[::1``, a host that
    changes under NFKC), lone surrogates and keys past MAX_URI are refused.
    """
    refused = _refuse(field, N_("Give the page's path, such as /2010/07/social-media/."))
    if not isinstance(value, str) or len(value) > 4 * MAX_URI:
        raise refused
    # U+DC80..U+DCFF stand for bytes percent-decoding could not read; they are re-encoded.
    if has_lone_surrogate(value.translate(_SURROGATE_ESCAPES)):
        raise refused
    value = value.strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        raise refused from None
    path = parts.path if (parts.scheme or parts.netloc) else value.split("#", 1)[0].split("?", 1)[0]
    path = quote(unquote(path, errors="surrogateescape"), safe=_SAFE, errors="surrogateescape")
    # "https://host//a" has the path "//a", which would read as a host when normalised again.
    path = "/" + path.lstrip("/")
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    if len(path) > MAX_URI:
        raise refused
    return path


# -- web addresses and e-mail ----------------------------------------------------------------


def website(value: Any, field: str = "website") -> str | None:
    """``Example.com`` → ``https://example.com/``; "" → None; anything not http(s) refused."""
    text = clean_text(value, field, max_length=MAX_WEBSITE)
    if not text:
        return None
    refused = _refuse(field, N_("Please enter a web address starting with http:// or https://."))
    found = web_address(text)
    if found is None or len(found) > MAX_WEBSITE:
        raise refused
    return found


def web_address(value: str) -> str | None:
    """The normalised http(s) URL, or None: total for any string (IDNA, NFKC, brackets)."""
    value = value.strip()
    if not value or any(c.isspace() for c in value) or has_lone_surrogate(value):
        return None
    if "://" not in value:
        value = "https://" + value
    try:
        parts = urlsplit(value)
        port = parts.port
        hostname = parts.hostname
    except ValueError:  # "http://[::1", a host that changes under NFKC, a port of 99999
        return None
    if parts.scheme.lower() not in ("http", "https") or not hostname:
        return None
    if "." not in hostname and hostname != "localhost":
        return None
    try:
        host = hostname.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if not re.fullmatch(r"[a-z0-9.-]+|\[[0-9a-f:.]+\]", host):
        return None
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def email(value: Any, field: str = "email", *, required: bool = True) -> str:
    """A syntactically valid address (email-validator, no DNS look-up), as typed but trimmed."""
    text = clean_text(
        value,
        field,
        max_length=MAX_EMAIL,
        required=N_("Please enter your e-mail address.") if required else None,
        too_long=N_("Please enter a valid e-mail address."),
        single_line=True,
    )
    if not text:
        return ""
    try:
        validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except (EmailNotValidError, UnicodeError, ValueError):
        raise _refuse(field, N_("Please enter a valid e-mail address.")) from None
    return text


# -- dates -----------------------------------------------------------------------------------


def parse_date(value: Any, field: str = "date") -> datetime:
    """An aware UTC datetime from ISO 8601 text or a datetime; naive values count as UTC."""
    refused = _refuse(field, N_("Give a date as ISO 8601, such as 2024-05-01T12:00:00Z."))
    if isinstance(value, str):
        if len(value) > 64 or has_lone_surrogate(value):
            raise refused
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise refused from None
    if not isinstance(value, datetime):
        raise refused
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):  # 0001-01-01T00:00+05:00 is before year 1 in UTC
        raise refused from None
