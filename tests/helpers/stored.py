"""Reading what the database holds, for tests: production stores keep only what kibitz uses."""

from __future__ import annotations

from db.database import Database
from db.models import Comment, Status
from db.moderation import ModerationStore


async def with_status(db: Database, status: Status, limit: int = 200) -> list[Comment]:
    """Every comment with ``status`` (pending oldest first, the others newest first)."""
    return [c for c, _ in await ModerationStore(db).search(status, limit=limit)]
