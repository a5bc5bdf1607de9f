"""Jinja2 templates from ``web/templates``, with the site's language installed."""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from db.models import Status
from server.discussion.markup import COMMENT_TAGS
from server.discussion.moderation import LIST_ACTIONS, Action
from server.discussion.shapes import iso
from server.i18n import long_date, long_datetime, translations
from server.settings import Settings

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"

# The line under the form that tells commenters which tags they may use.
ALLOWED_TAGS_HINT = " ".join(
    f"<{tag}{attrs}>"
    for tag, attrs in (
        ("a", ' href="" title=""'),
        ("abbr", ' title=""'),
        ("acronym", ' title=""'),
        ("b", ""),
        ("blockquote", ' cite=""'),
        ("cite", ""),
        ("code", ""),
        ("del", ' datetime=""'),
        ("em", ""),
        ("i", ""),
        ("q", ' cite=""'),
        ("strike", ""),
        ("strong", ""),
    )
)
assert {t.split()[0].strip("<>") for t in ALLOWED_TAGS_HINT.split("> <")} <= COMMENT_TAGS


AVATAR_COLOURS = 8


def initial(name: str) -> str:
    """The first letter of a name, for the avatar beside a comment (``?`` if none)."""
    letter = next((c for c in name if c.isalnum()), "?")
    return letter.upper()


def avatar_colour(name: str) -> int:
    """One of a few avatar colours, the same for the same name on every page and process."""
    return zlib.crc32(name.strip().lower().encode("utf-8", "replace")) % AVATAR_COLOURS


_BLOCK_TAG = re.compile(
    r"</?(?:p|h[1-6]|li|ul|ol|dl|dt|dd|blockquote|br|div|pre|table|tr|td|th|"
    r"figure|figcaption|hr)\b[^>]*>",
    re.IGNORECASE,
)


def excerpt(html: str, limit: int = 240) -> str:
    """The opening words of a post body as plain text, cut at a word boundary."""
    text = " ".join(Markup(_BLOCK_TAG.sub(" ", html)).striptags().split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:.") + "…"


class Templates:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
        )
        # The jinja2.ext.i18n extension adds this method at run time; Environment lacks it.
        env.install_gettext_translations(translations(settings.language), newstyle=True)  # type: ignore[attr-defined]
        language = settings.language
        env.filters["longdate"] = lambda value: long_date(value, language)
        env.filters["longdatetime"] = lambda value: long_datetime(value, language)
        env.filters["iso"] = iso
        env.filters["initial"] = initial
        env.filters["avatar_colour"] = avatar_colour
        env.filters["excerpt"] = excerpt
        # Text from data (a held reason, possibly imported) is looked up in the catalogue but
        # never %-formatted: newstyle `_()` formats, and a reason with "%" would raise.
        env.filters["translated"] = translations(language).gettext
        env.globals.update(
            language=language,
            allowed_tags=ALLOWED_TAGS_HINT,
            follow_author_links=settings.follow_author_links,
            public_url=settings.public_url,
            moderation=settings.moderation,
            votes_mode=settings.votes,
            # The one copy of the statuses and actions (db.models, server.discussion).
            Status=Status,
            Action=Action,
            list_actions=LIST_ACTIONS,
        )
        self.env = env
        self._jinja = Jinja2Templates(env=env)

    def response(
        self,
        request: Request,
        name: str,
        context: Mapping[str, Any] | None = None,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        return self._jinja.TemplateResponse(
            request, name, dict(context or {}), status_code=status_code, headers=dict(headers or {})
        )

    def render(self, name: str, **context: Any) -> str:
        return self.env.get_template(name).render(**context)
