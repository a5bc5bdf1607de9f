"""Settings come from one table: each row names a variable, its field, default and check."""

from __future__ import annotations

from dataclasses import fields

import pytest

from server.errors import ConfigError
from server.settings import SETTINGS, Settings, load


def test_every_field_has_exactly_one_row() -> None:
    """Settings and the SETTINGS rows name the same fields in the same order, once each."""
    assert [s.field for s in SETTINGS] == [f.name for f in fields(Settings)]
    assert len({s.variable for s in SETTINGS}) == len(SETTINGS)


def test_defaults_build_settings() -> None:
    """With nothing set, every row's default parses and the derived defaults are filled in."""
    settings = load({"KIBITZ_DATA_DIR": "/srv/kibitz"}, create_secret=False)
    assert settings.database_url == "sqlite:////srv/kibitz/kibitz.db"
    assert settings.mail_from == "kibitz@127.0.0.1"
    assert (settings.max_depth, settings.post_rate, settings.live_port) == (
        5,
        "5/minute;30/hour",
        None,
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "KIBITZ_MAX_DEPTH",
            "deep",
            "KIBITZ_MAX_DEPTH='deep' is not valid: expected a whole number.",
        ),
        ("KIBITZ_LIVE_PORT", "70000", "expected a port number up to 65535"),
        ("KIBITZ_MODERATION", "Sometimes", "KIBITZ_MODERATION='sometimes' is not valid"),
        ("KIBITZ_MIN_FILL_SECONDS", "9", "expected between 0 and 3 seconds"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str, message: str) -> None:
    """A wrong value is refused with a message naming the variable and what it accepts."""
    with pytest.raises(ConfigError) as refused:
        load({variable: value}, create_secret=False)
    assert message in str(refused.value)
