"""Staff sessions, kept server-side so that logging out and expiry really end them.

The browser holds a random token; the table holds only its SHA-256 hash, so a copy of the
database cannot be replayed as a cookie.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from db.database import Database
from db.models import StaffMember, as_datetime, now


def session_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    staff: StaffMember
    created: datetime
    expires: datetime


class SessionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def open(self, token: str, staff_id: int, expires: datetime, address: str | None) -> None:
        """Store a new session, and drop every expired one while we write anyway."""
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM staff_sessions WHERE expires <= $1", now())
            await conn.execute(
                "INSERT INTO staff_sessions (token_hash, staff_id, created, expires, address) "
                "VALUES ($1, $2, $3, $4, $5)",
                session_hash(token),
                staff_id,
                now(),
                expires,
                address,
            )

    async def get(self, token: str) -> Session | None:
        """The live session for this token: unexpired, of an account that is not disabled."""
        async with self.db.read() as conn:
            row = await conn.fetchrow(
                "SELECT s.id, s.name, s.email, s.role, x.created, x.expires "
                "FROM staff_sessions x JOIN staff s ON s.id = x.staff_id "
                "WHERE x.token_hash = $1 AND x.expires > $2 AND s.disabled IS NULL",
                session_hash(token),
                now(),
            )
        if row is None:
            return None
        return Session(
            StaffMember.from_row(row), as_datetime(row["created"]), as_datetime(row["expires"])
        )

    async def close(self, token: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "DELETE FROM staff_sessions WHERE token_hash = $1", session_hash(token)
            )
