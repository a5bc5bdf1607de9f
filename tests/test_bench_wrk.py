"""bench/wrk.py's POST script sends valid comments, each from its own client address."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import wrk
from tests.helpers.servers import IN_CI, make_settings, serve

# In CI a missing wrk fails the run (.ci/run installs it); elsewhere the test is skipped.
pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None and not IN_CI, reason="wrk is not installed (apt-get install wrk)"
)


async def test_post_script_comments_land_from_distinct_addresses_under_the_rate_limit(
    database_url: str, tmp_path: Path
) -> None:
    """Every POST of the Lua script is a 201 past the default rate limit, one address each."""
    settings = make_settings(
        database_url,
        tmp_path,
        KIBITZ_TRUSTED_PROXIES="127.0.0.1",
        KIBITZ_POST_RATE="5/minute;30/hour",
        KIBITZ_DUPLICATE_WINDOW="600",
    )
    async with serve(settings) as server:
        port = int(server.url.rsplit(":", 1)[1])
        target = SimpleNamespace(port=port, proc=SimpleNamespace(pid=os.getpid()))
        script = ["post.lua", "kibitz", "/bench/p", "3", "0", server.url]
        run = await asyncio.to_thread(wrk.wrk, target, "/", 1, script)  # type: ignore[arg-type]
        await asyncio.sleep(0.5)  # requests cut off at the end may still commit
        assert run.requests > 0 and run.bad == 0
        async with server.state.db.read() as conn:
            rows = await conn.fetch(
                "SELECT COUNT(*) AS n, COUNT(DISTINCT address) AS addresses, "
                "COUNT(DISTINCT thread_id) AS threads FROM comments WHERE status = 'approved'"
            )
    assert rows[0]["n"] >= run.requests
    assert rows[0]["addresses"] == rows[0]["n"]
    assert rows[0]["threads"] == 3
