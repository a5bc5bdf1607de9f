"""Every message of the feeds and mail pages, mails and feeds has a German translation."""

from __future__ import annotations

import re

from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from tests.helpers.servers import ROOT

LOCALE = ROOT / "web" / "locale" / "de" / "LC_MESSAGES"
JINJA = {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}
SOURCES = {
    "python": ["server/mail/pages.py", "server/mail/links.py"],
    "jinja2.ext.babel_extract": [
        "web/templates/mail/action.html",
        "web/templates/mail/held.txt",
        "web/templates/mail/confirm.txt",
        "web/templates/mail/reply.txt",
        "web/templates/mail/privacy.txt",
        "web/templates/feeds/atom.xml",
    ],
}
# Shared with the rest of the site; the site's own catalogue (messages.po) translates them.
SHARED = {"kibitz", "Recent comments", "Comments on “%(title)s”"}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def test_feeds_and_mail_messages_are_translated_to_german() -> None:
    """A page, mail or feed string without a German translation (any .po file) fails."""
    german: dict[str, str] = {}
    for path in sorted(LOCALE.glob("*.po")):
        with path.open("rb") as f:
            german.update(
                {
                    m.id: m.string
                    for m in read_po(f, locale="de")
                    if isinstance(m.id, str) and m.id and m.string
                }
            )
    found = []
    for method, paths in SOURCES.items():
        for path in paths:
            options = JINJA if method != "python" else None
            for _, message, _, _ in extract_from_file(method, str(ROOT / path), options=options):
                found.append((path, message))
    found += [
        ("web/templates/post.html", "Notify me of replies by e-mail"),
        (
            "web/templates/post.html",
            "You get a mail to confirm first; every mail has a link to stop them.",
        ),
    ]
    assert len(found) > 40
    for path, message in found:
        if message in SHARED:
            continue
        assert message in german, f"{path}: {message!r} has no German translation"
        assert set(PLACEHOLDER.findall(german[message])) == set(PLACEHOLDER.findall(message))
