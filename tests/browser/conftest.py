"""Browser tests: Debian's chromium, driven by playwright (sync API in the widget and post-page
tests, async API in the admin and no-JavaScript tests).

Every browser test lives in this folder: one place that marks them ``browser`` and one pair of
fixtures, both built by tests/helpers/browsers.py. The sync tests run kibitz on a real socket in
a background thread with its own event loop, so playwright's sync API and pytest-asyncio never
share a loop; see the helpers module for the embedding site and screenshots.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browsers import (
    Setup,
    async_browser,
    run_host,
    run_kibitz,
    sync_browser,
    two_origins,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


# Module scope, not session: while playwright's sync API is open it owns this thread's event
# loop, and the asyncio tests collected after the browser tests need the thread back.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_browser() as launched:
        yield launched


@pytest.fixture
async def browser_async() -> AsyncIterator[Any]:
    """The same chromium through playwright's async API, for tests that drive it from asyncio."""
    async with async_browser() as launched:
        yield launched


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Setup]:
    """kibitz on one port (SQLite, moderation off) and an allowed embedding site on another."""
    origins = two_origins(tmp_path)
    with run_host(origins.host_port) as host, run_kibitz(origins.settings, origins.port) as kibitz:
        yield Setup(kibitz, host, origins.settings, origins.port)
