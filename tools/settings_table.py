"""Write the settings tables in README.md, docs/settings.md and docs/api.md from the code.

``server.settings.SETTINGS`` (one row per setting, the same rows ``load`` builds ``Settings``
from) is the single source; this keeps the docs from drifting, and
tests/test_docs.py fails when they have. Run ``make docs`` after adding or changing a setting.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.settings import SETTINGS  # noqa: E402

START, END = "<!-- settings:start -->", "<!-- settings:end -->"
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "settings.md", ROOT / "docs" / "api.md")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table() -> str:
    """The Markdown table: variable, what it means, its default."""
    rows = ["| variable | meaning | default |", "| --- | --- | --- |"]
    for setting in SETTINGS:
        meaning, _, default_note = setting.help.partition("; default: ")
        if setting.default:
            shown = f"`{setting.default}`"
        elif default_note:
            shown = default_note
        else:
            shown = "unset"
        rows.append(f"| `{setting.variable}` | {_cell(meaning)} | {_cell(shown)} |")
    return "\n".join(rows)


def render(document: str) -> str:
    """``document`` with the text between the markers replaced by the current table."""
    before, start, rest = document.partition(START)
    _, end, after = rest.partition(END)
    if not start or not end:
        raise ValueError(f"the document has no {START} … {END} section")
    return f"{before}{START}\n{table()}\n{END}{after}"


def main() -> int:
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        updated = render(text)
        if updated != text:
            path.write_text(updated, encoding="utf-8")
            print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
