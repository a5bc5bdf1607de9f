"""The documentation says what the code does: settings tables, commands, routes."""

from __future__ import annotations

import importlib.util
import re

import pytest

from server.cli import parser
from server.settings import SETTINGS
from tests.helpers.servers import ROOT

spec = importlib.util.spec_from_file_location(
    "settings_table", ROOT / "tools" / "settings_table.py"
)
assert spec and spec.loader
settings_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(settings_table)

README = ROOT / "README.md"
API = ROOT / "docs" / "api.md"


@pytest.mark.parametrize("path", settings_table.DOCUMENTS, ids=lambda p: p.name)
def test_settings_tables_match_the_code(path: object) -> None:
    """Each settings table is exactly what `make docs` generates from server/settings.py."""
    text = path.read_text(encoding="utf-8")  # type: ignore[attr-defined]
    assert settings_table.render(text) == text, "run `make docs`"
    for setting in SETTINGS:
        assert f"| `{setting.variable}` |" in text


def test_table_shows_defaults_and_escapes_pipes() -> None:
    """Defaults come from the table or the help's 'default:' note; '|' cannot break a row."""
    rows = {
        line.split(" | ")[0].strip("| `"): line for line in settings_table.table().splitlines()[2:]
    }
    assert rows["KIBITZ_MODERATION"].endswith("| `first-time` |")
    assert rows["KIBITZ_SECRET_KEY"].endswith("| generated once into the data dir |")
    assert all(line.count(" | ") == 2 for line in rows.values())


def test_readme_names_the_two_commands_and_links_the_docs() -> None:
    """README says `make run` and `make test` and links docs/api.md and docs/settings.md."""
    text = README.read_text(encoding="utf-8")
    assert "make run" in text and "make test" in text
    assert "The test command is **`make test`**" in text
    assert "(docs/api.md)" in text and "(docs/settings.md)" in text


def test_api_doc_covers_every_command() -> None:
    """Every `kibitz` subcommand appears in docs/api.md."""
    text = API.read_text(encoding="utf-8")
    top = parser()
    commands = next(a for a in top._actions if a.dest == "command").choices  # type: ignore[union-attr]
    for name, sub in commands.items():
        actions = [a for a in sub._actions if a.dest == "action"]
        names = (
            [f"kibitz {name} {action}" for action in actions[0].choices]
            if actions
            else [f"kibitz {name}"]
        )
        for command in names:
            assert f"`{command}" in text, command


def test_api_doc_covers_every_contract_route() -> None:
    """The routes of the contract, the pages and the API are all documented."""
    text = API.read_text(encoding="utf-8")
    from server.http import api, health, pages, threads

    documented = set(re.findall(r"`(?:GET|POST|PATCH|DELETE) (/[^` ?]*)", text))
    for module in (api, health, pages, threads):
        for route in module.routes:
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
            expanded = (
                [path.replace("{action}", a) for a in ("approve", "spam", "delete")]
                if "{action}" in path
                else [path]
            )
            for one in expanded:
                assert one in documented, one
    for path in ("/ws", "/ws/moderation", "/admin", "/feeds/comments.atom", "/feeds/thread.atom"):
        assert path in documented, path
