"""Shared fixtures: real databases, real servers on free ports, real HTTP.

Every test that takes ``database_url`` runs twice, on SQLite and on PostgreSQL. The functions
behind these fixtures (``serve``, ``make_settings``, the PostgreSQL helpers, ``start_process``)
live in tests/helpers/servers.py; test modules import them from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.helpers.mail import Inbox, Mailbox
from tests.helpers.servers import (
    PG_URL,
    REDIS_URL,
    Server,
    drop_pg_database,
    drop_pg_template,
    free_port,
    make_settings,
    new_pg_database,
    require,
    serve,
)


@pytest.fixture(scope="session", autouse=True)
def _drop_template() -> Iterator[None]:
    yield
    if PG_URL:
        asyncio.run(drop_pg_template())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database URL: SQLite in a temp dir, or a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kibitz.db'}"
        return
    url = await new_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (for tests that only make sense there)."""
    url = await new_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
def redis_url() -> str:
    return require(REDIS_URL, "KIBITZ_TEST_REDIS_URL")


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    """A running kibitz on both backends, moderation off, rate limits off."""
    async with serve(make_settings(database_url, tmp_path)) as running:
        yield running


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    """An SMTP server on a free port, not started yet (tests decide when it is up)."""
    box = Mailbox(Inbox(), free_port())
    try:
        yield box
    finally:
        await box.stop()
