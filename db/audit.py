"""The audit log: every staff action, who did it and when, newest first when read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from db.database import Database
from db.models import as_datetime, now


@dataclass(frozen=True)
class AuditEntry:
    id: int
    staff_name: str
    action: str
    target: str | None
    detail: str | None
    created: datetime


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self,
        staff_id: int | None,
        staff_name: str,
        action: str,
        target: str | None = None,
        detail: str | None = None,
    ) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO audit_log (staff_id, staff_name, action, target, detail, created) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                staff_id,
                staff_name,
                action,
                target,
                detail,
                now(),
            )

    async def newest(self, *, limit: int = 200, offset: int = 0) -> list[AuditEntry]:
        async with self.db.read() as conn:
            rows = await conn.fetch(
                "SELECT id, staff_name, action, target, detail, created FROM audit_log "
                "ORDER BY id DESC LIMIT $1 OFFSET $2",
                limit,
                offset,
            )
        return [
            AuditEntry(
                r["id"],
                r["staff_name"],
                r["action"],
                r["target"],
                r["detail"],
                as_datetime(r["created"]),
            )
            for r in rows
        ]
