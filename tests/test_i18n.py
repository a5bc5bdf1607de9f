"""Languages: the German catalogue is complete, and a German site is German end to end."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from server.discussion.errors import InvalidInput
from server.discussion.validation import validate_comment, validate_text
from tests.helpers.posts import add_comment, add_post, fill_and_post
from tests.helpers.servers import ROOT, make_settings, serve
from tests.helpers.view import by_class, by_id, form_values, parse, text_of

CATALOGUE = ROOT / "web" / "locale" / "de" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def extracted() -> dict[str | tuple[str, ...], str]:
    """Every translatable message in templates and server code, as `make messages` finds it."""
    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[str | tuple[str, ...], str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map
    ):
        found.setdefault(message, f"{filename}:{lineno}")
    return found


def german() -> dict[str | tuple[str, ...], str | tuple[str, ...]]:
    with CATALOGUE.open("rb") as f:
        catalog = read_po(f, locale="de")
    assert catalog.plural_forms == "nplurals=2; plural=(n != 1);"
    return {m.id: m.string for m in catalog if m.id and not m.fuzzy}


def test_extraction_finds_templates_and_server_messages() -> None:
    """The extractor sees both the Jinja templates and the messages raised in server code."""
    found = extracted()
    assert "Leave a comment" in found
    assert ("%(count)s comment", "%(count)s comments") in found
    assert "Please enter your name." in found
    assert "The request body is larger than 64 KiB." in found
    assert len(found) > 60


def test_every_message_has_a_german_translation() -> None:
    """A template string or server message without a German translation fails the build."""
    catalogue = german()
    missing = []
    for message, where in extracted().items():
        translation = catalogue.get(message)
        forms = translation if isinstance(translation, tuple) else (translation,)
        if not translation or not all(forms):
            missing.append(f"{where}: {message!r}")
            continue
        wanted = set(PLACEHOLDER.findall(message if isinstance(message, str) else message[1]))
        for form in forms:
            assert set(PLACEHOLDER.findall(form or "")) == wanted, f"{where}: {form!r}"
    assert not missing, "untranslated (run `make messages`, then translate):\n" + "\n".join(missing)


@pytest.mark.parametrize(
    "data",
    [
        {"author": 1, "email": None, "website": [], "text": {}},
        {"author": "\ud800", "email": "\ud800", "website": "\ud800", "text": "\ud800"},
        {"author": " ", "email": "", "website": "ftp://x.example", "text": " ", "parent": "x"},
        {
            "author": "a" * 101,
            "email": "nope",
            "website": "https://" + "a" * 500,
            "text": "a" * 10_001,
        },
    ],
)
def test_validation_messages_are_in_the_catalogue(data: dict[str, object]) -> None:
    """Every message validation can produce is one the German catalogue translates."""
    catalogue = german()
    with pytest.raises(InvalidInput) as failed:
        validate_comment(data)
    messages = list(failed.value.fields.values())
    for text in (None, "", "a" * 10_001):
        with pytest.raises(InvalidInput) as edit:
            validate_text({"text": text})
        messages += edit.value.fields.values()
    assert messages
    for message in messages:
        assert catalogue.get(message), message


async def test_german_site_end_to_end(database_url: str, tmp_path: Path) -> None:
    """KIBITZ_LANGUAGE=de gives German labels, plurals, dates and field messages."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_LANGUAGE="de")) as server:
        await add_post(server, "eins", "Eins", published=datetime(2011, 5, 24, tzinfo=UTC))
        await add_post(server, "zwei", "Zwei", published=datetime(2011, 5, 25, tzinfo=UTC))
        await add_post(server, "drei", "Drei", published=datetime(2011, 5, 26, tzinfo=UTC))
        await add_comment(
            server, "/posts/eins", "Karim", created=datetime(2011, 5, 24, 18, tzinfo=UTC)
        )
        await add_comment(server, "/posts/zwei", "A")
        await add_comment(server, "/posts/zwei", "B")
        async with server.client() as client:
            index = await client.get("/")
            post = await client.get("/posts/eins")
            invalid = await fill_and_post(client, "eins", author="", email="x", text="Hallo")
            missing = await client.get("/posts/gibt-es-nicht")
    root = parse(index.text)
    assert root.get("lang") == "de"
    assert [
        text_of(by_class(s, "post-summary__comments")[0]) for s in by_class(root, "post-summary")
    ] == ["0 Kommentare", "2 Kommentare", "1 Kommentar"]
    assert "Von Admin" in text_of(by_class(root, "post-meta")[2])
    assert "24. Mai 2011" in text_of(by_class(root, "post-meta")[2])

    page = parse(post.text)
    assert text_of(by_class(page, "comments__title")[0]) == "1 Kommentar zu „Eins“"
    assert text_of(by_class(page, "comment__permalink")[0]) == "24. Mai 2011"
    assert text_of(by_class(page, "comment__reply")[0]) == "Antworten"
    labels = {label.get("for"): text_of(label) for label in page.iter("label")}
    assert labels["kibitz-author"] == "Name (erforderlich)"
    assert labels["kibitz-email"] == "E-Mail (erforderlich)"
    assert labels["kibitz-text"] == "Kommentar (erforderlich)"
    assert text_of(by_id(page, "kibitz-email-hint")) == "wird nicht veröffentlicht"  # type: ignore[arg-type]
    assert text_of(by_class(page, "respond__title")[0]) == "Schreibe einen Kommentar"

    assert invalid.status_code == 422
    form = parse(invalid.text)
    assert text_of(by_id(form, "kibitz-author-error")) == "Bitte gib deinen Namen ein."  # type: ignore[arg-type]
    assert text_of(by_id(form, "kibitz-email-error")) == (  # type: ignore[arg-type]
        "Bitte gib eine gültige E-Mail-Adresse ein."
    )
    assert form_values(form)["text"] == "Hallo"

    assert missing.status_code == 404
    assert "Seite nicht gefunden" in missing.text
