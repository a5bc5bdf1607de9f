"""Languages: gettext catalogues read from ``web/locale`` with Babel, dates and plurals.

The ``.po`` files are compiled in memory at start, so there is no build step and no binary
file in the repository. Templates use ``{% trans %}`` and ``_()``; the widget gets the same
catalogue as JSON.
"""

from __future__ import annotations

import gettext
from datetime import datetime
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALES = Path(__file__).resolve().parent.parent / "web" / "locale"


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue without translating it.

    The core raises English messages; pages translate them with ``_(message)`` and the widget
    with the catalogue, so ``pybabel extract`` (and the test that every message has a German
    translation) must find them where they are written.
    """
    return message


@cache
def translations(language: str) -> gettext.NullTranslations:
    path = LOCALES / language / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as f:
        catalog = read_po(f, locale=language)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def asked_language(accept_language: str | None) -> str | None:
    """The shipped language (other than English) that an ``Accept-Language`` header names
    first, or ``None``. The widget sends its own language, so its reader gets the API's
    messages in the widget's words without the widget carrying the server's catalogue."""
    first = (accept_language or "").split(",")[0].split(";")[0].strip().lower()
    language = first.split("-")[0]
    if not language.isalpha() or language == "en":
        return None
    return language if (LOCALES / language / "LC_MESSAGES" / "messages.po").exists() else None


def localise(body: dict[str, object], language: str | None) -> dict[str, object]:
    """An API error body with its message and field messages in ``language``."""
    if language is None:
        return body
    say = translations(language).gettext
    out = dict(body)
    if isinstance(out.get("error"), str):
        out["error"] = say(str(out["error"]))
    fields = out.get("fields")
    if isinstance(fields, dict):
        out["fields"] = {k: say(v) if isinstance(v, str) else v for k, v in fields.items()}
    return out


@cache
def catalogue(language: str) -> dict[str, str | list[str]]:
    """msgid → msgstr (or the plural forms), for the widget's JavaScript."""
    path = LOCALES / language / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return {}
    with path.open("rb") as f:
        catalog = read_po(f, locale=language)
    out: dict[str, str | list[str]] = {}
    for message in catalog:
        if not message.id or not message.string:
            continue
        if isinstance(message.id, str):
            assert isinstance(message.string, str)  # a singular entry has one translation
            out[message.id] = message.string
        else:
            out[message.id[0]] = list(message.string)
    return out


def long_date(value: datetime, language: str) -> str:
    """ "May 24, 2011" / "24. Mai 2011"."""
    return format_date(value, format="long", locale=language)


def long_datetime(value: datetime, language: str) -> str:
    return format_datetime(value, format="long", locale=language, tzinfo=value.tzinfo)
