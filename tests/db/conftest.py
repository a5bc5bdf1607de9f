"""Fixtures of the store tests: a migrated database on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from db.database import Database, connect
from db.migrate import migrate


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await connect(database_url)
    await migrate(database)
    try:
        yield database
    finally:
        await database.close()
