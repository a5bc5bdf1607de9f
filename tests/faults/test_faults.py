"""The fault suite, short version (CI): app, Redis and PostgreSQL killed, Redis hung,
PostgreSQL connections cut mid-query; and the embedded default killed during writes, its
disk filled and its data directory made read-only (needs root for the loop mount).

The long version is ``make faults``; the driver is :mod:`tests.faults.driver`.
"""

from __future__ import annotations

import pytest

from tests.faults.driver import SHORT, run

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]


async def test_nothing_acknowledged_lost_nothing_doubled_every_reader_complete() -> None:
    """Under load through every fault: 0 lost, 0 doubled, every reader has every event once."""
    result = await run(SHORT)
    print(result.table())
    assert result.acknowledged > 100
    assert (result.lost, result.doubled, result.given_up, result.refused) == (0, 0, 0, 0)
    assert result.server_errors == 0, result.table()  # 503 while down, never 500
    assert result.readers_complete, result.table()
    # Recovery without restarting kibitz: writes succeed soon after each service is back,
    # and every reader is complete within the bound of docs/live.md.
    for phase in result.phases:
        assert phase["first_write_after_heal"] is not None, phase["name"]
        assert phase["first_write_after_heal"] < 5, phase
        assert phase["readers_complete_after"] is not None, phase["name"]
        assert phase["readers_complete_after"] < 5, phase


async def test_embedded_sqlite_killed_filled_and_read_only_loses_and_doubles_nothing() -> None:
    """SQLite killed, its disk full, its data directory read-only: 0 lost, 0 doubled, clear 503s."""
    result = await run(SHORT, embedded=True)
    print(result.table())
    assert result.acknowledged > 50
    assert (result.lost, result.doubled, result.given_up, result.refused) == (0, 0, 0, 0)
    assert result.server_errors == 0, result.table()
    assert result.readers_complete, result.table()
    storage = [p for p in result.phases if p["storage"]]
    assert [p["name"] for p in storage] == ["disk full", "read-only data directory"]
    assert result.storage_ok, result.table()
    for phase in result.phases:
        assert phase["first_write_after_heal"] is not None, phase["name"]
        assert phase["readers_complete_after"] is not None, phase["name"]
    for phase in storage:
        assert phase["first_write_after_heal"] < 5, phase
        assert phase["storage"]["health_up_after"] < 5, phase
        assert phase["readers_complete_after"] < 5, phase
