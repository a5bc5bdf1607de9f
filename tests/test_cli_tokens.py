"""``kibitz token list`` and ``kibitz token revoke`` as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.servers import ROOT


def _kibitz(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KIBITZ_DATA_DIR": str(tmp_path),
        "KIBITZ_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
    }
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_tokens_are_listed_without_secrets_and_revoked(tmp_path: Path) -> None:
    """A token is listed by number and owner only; once revoked it says so; an unknown number
    exits 2 with a reason."""
    assert (
        _kibitz(
            tmp_path, "user", "add", "ops", "--password-stdin", stdin="long password\n"
        ).returncode
        == 0
    )
    token = _kibitz(tmp_path, "token", "add", "ops").stdout.strip()
    listed = _kibitz(tmp_path, "token", "list")
    assert listed.returncode == 0 and token not in listed.stdout
    number = listed.stdout.split("\t")[0]
    assert "ops" in listed.stdout and "in use" in listed.stdout
    assert _kibitz(tmp_path, "token", "revoke", number).returncode == 0
    assert "revoked" in _kibitz(tmp_path, "token", "list").stdout
    again = _kibitz(tmp_path, "token", "revoke", number)
    assert again.returncode == 2 and again.stderr.startswith("kibitz: no token")
