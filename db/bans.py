"""Bans: who may no longer publish, kept in the database so every process sees a ban at once.

Matching is :mod:`server.discussion.bans`' job; this store only keeps the rows and hands out
the live ones (no expiry, or an expiry still ahead).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from db.database import Database, Row
from db.models import as_datetime, maybe_datetime, now

# A ban live at {at} that names the (normalised) e-mail address, sub or name skeleton, or
# covers the address key (32 hex digits, see ``net_low``). A POST asks it with its other
# questions in one read (:mod:`db.screening`); matching keys come from
# ``server.discussion.bans.ban_keys``.
LIVE_MATCH = (
    "(expires IS NULL OR expires > {at}) AND (email = {email} OR sub = {sub} "
    "OR name_key = {name_key} OR (net_low <= {address} AND net_high >= {address}))"
)
COLUMNS = "id, email, address, sub, name, name_key, reason, expires, created, staff_name"


@dataclass(frozen=True)
class Ban:
    id: int
    email: str | None
    address: str | None
    sub: str | None
    name: str | None
    name_key: str | None
    reason: str
    expires: datetime | None
    created: datetime
    by: str

    @classmethod
    def from_row(cls, row: Row) -> Ban:
        return cls(
            id=row["id"],
            email=row["email"],
            address=row["address"],
            sub=row["sub"],
            name=row["name"],
            name_key=row["name_key"],
            reason=row["reason"],
            expires=maybe_datetime(row["expires"]),
            created=as_datetime(row["created"]),
            by=row["staff_name"],
        )

    def live(self, at: datetime) -> bool:
        return self.expires is None or self.expires > at


@dataclass(frozen=True)
class NewBan:
    email: str | None = None
    address: str | None = None
    sub: str | None = None
    name: str | None = None
    name_key: str | None = None
    reason: str = ""
    expires: datetime | None = None
    net_low: str | None = None
    net_high: str | None = None


class BanStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, ban: NewBan, staff_id: int | None, staff_name: str) -> Ban:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "INSERT INTO bans (email, address, sub, name, name_key, reason, expires, created, "
                "staff_id, staff_name, net_low, net_high) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
                f"RETURNING {COLUMNS}",
                ban.email,
                ban.address,
                ban.sub,
                ban.name,
                ban.name_key,
                ban.reason,
                ban.expires,
                now(),
                staff_id,
                staff_name,
                ban.net_low,
                ban.net_high,
            )
        assert row is not None
        return Ban.from_row(row)

    async def all(self) -> list[Ban]:
        """Every ban, expired ones too (staff see when one ran out), newest first."""
        async with self.db.read() as conn:
            rows = await conn.fetch(f"SELECT {COLUMNS} FROM bans ORDER BY id DESC")
        return [Ban.from_row(r) for r in rows]

    async def remove(self, ban_id: int) -> Ban | None:
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(f"DELETE FROM bans WHERE id = $1 RETURNING {COLUMNS}", ban_id)
        return Ban.from_row(row) if row else None
