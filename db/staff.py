"""Staff accounts and their API tokens (stored as SHA-256 hashes, never in the clear)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from db.database import Database
from db.errors import Conflict
from db.models import StaffMember, as_datetime, maybe_datetime, now


@dataclass(frozen=True)
class ApiToken:
    """What the admin lists of a token: whose, its label, and whether it was revoked."""

    id: int
    staff_name: str
    label: str | None
    created: datetime
    revoked: datetime | None


def token_hash(token: str) -> str:
    # Tokens are 256-bit random strings, so a fast hash is enough; argon2 is for passwords.
    return hashlib.sha256(token.encode()).hexdigest()


class StaffStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self, name: str, role: str, password_hash: str, email: str | None = None
    ) -> StaffMember:
        async with self.db.transaction() as conn:
            if await conn.fetchval("SELECT 1 FROM staff WHERE name = $1", name):
                raise Conflict(f"a staff account named {name!r} exists")
            row = await conn.fetchrow(
                "INSERT INTO staff (name, email, role, password_hash, created) "
                "VALUES ($1, $2, $3, $4, $5) RETURNING id, name, email, role",
                name,
                email,
                role,
                password_hash,
                now(),
            )
        assert row is not None
        return StaffMember.from_row(row)

    async def by_name(self, name: str) -> tuple[StaffMember, str] | None:
        """The account and its password hash, for login."""
        async with self.db.read() as conn:
            row = await conn.fetchrow(
                "SELECT id, name, email, role, password_hash FROM staff "
                "WHERE name = $1 AND disabled IS NULL",
                name,
            )
        return (StaffMember.from_row(row), row["password_hash"]) if row else None

    async def by_id(self, staff_id: int) -> StaffMember | None:
        """An active account (a disabled one is None: its mail links stop working)."""
        async with self.db.read() as conn:
            row = await conn.fetchrow(
                "SELECT id, name, email, role FROM staff WHERE id = $1 AND disabled IS NULL",
                staff_id,
            )
        return StaffMember.from_row(row) if row else None

    async def active(self) -> list[StaffMember]:
        """Every account that is not disabled (who gets held-comment mail)."""
        async with self.db.read() as conn:
            rows = await conn.fetch(
                "SELECT id, name, email, role FROM staff WHERE disabled IS NULL ORDER BY name"
            )
        return [StaffMember.from_row(r) for r in rows]

    async def add_token(self, staff_id: int, token: str, label: str | None = None) -> int:
        async with self.db.transaction() as conn:
            return int(
                await conn.fetchval(
                    "INSERT INTO api_tokens (staff_id, token_hash, created, label) "
                    "VALUES ($1, $2, $3, $4) RETURNING id",
                    staff_id,
                    token_hash(token),
                    now(),
                    label,
                )
            )

    async def tokens(self) -> list[ApiToken]:
        """Every API token (never the token itself: only its hash is stored), newest first."""
        async with self.db.read() as conn:
            rows = await conn.fetch(
                "SELECT t.id, s.name AS staff_name, t.label, t.created, t.revoked "
                "FROM api_tokens t JOIN staff s ON s.id = t.staff_id ORDER BY t.id DESC"
            )
        return [
            ApiToken(
                r["id"],
                r["staff_name"],
                r["label"],
                as_datetime(r["created"]),
                maybe_datetime(r["revoked"]),
            )
            for r in rows
        ]

    async def revoke_token(self, token_id: int) -> int | None:
        """Revoke a token at once; its owner's id, or None when no such token is in use."""
        async with self.db.transaction() as conn:
            owner = await conn.fetchval(
                "UPDATE api_tokens SET revoked = $2 WHERE id = $1 AND revoked IS NULL "
                "RETURNING staff_id",
                token_id,
                now(),
            )
        return int(owner) if owner is not None else None

    async def accounts(self) -> list[tuple[StaffMember, datetime | None]]:
        """Every account with the time it was disabled (None while active)."""
        async with self.db.read() as conn:
            rows = await conn.fetch(
                "SELECT id, name, email, role, disabled FROM staff ORDER BY name"
            )
        return [(StaffMember.from_row(r), maybe_datetime(r["disabled"])) for r in rows]

    async def disable(self, staff_id: int) -> StaffMember | None:
        """Disable an account: its sessions and tokens stop working, held-comment mail not
        yet sent to it is dropped; its comments stay."""
        async with self.db.transaction() as conn:
            row = await conn.fetchrow(
                "UPDATE staff SET disabled = $2 WHERE id = $1 AND disabled IS NULL "
                "RETURNING id, name, email, role",
                staff_id,
                now(),
            )
            if row is not None:
                await conn.execute(
                    "DELETE FROM mail_queue WHERE dedupe LIKE $1 AND sent IS NULL",
                    f"held:%:{staff_id}",
                )
                await conn.execute("DELETE FROM staff_sessions WHERE staff_id = $1", staff_id)
                await conn.execute(
                    "UPDATE api_tokens SET revoked = $2 WHERE staff_id = $1 AND revoked IS NULL",
                    staff_id,
                    now(),
                )
        return StaffMember.from_row(row) if row else None

    async def disable_by_name(self, name: str) -> StaffMember | None:
        """:meth:`disable` by account name (the CLI); None for no such active account."""
        async with self.db.read() as conn:
            staff_id = await conn.fetchval(
                "SELECT id FROM staff WHERE name = $1 AND disabled IS NULL", name
            )
        return await self.disable(int(staff_id)) if staff_id is not None else None

    async def by_token(self, token: str) -> StaffMember | None:
        async with self.db.read() as conn:
            row = await conn.fetchrow(
                "SELECT s.id, s.name, s.email, s.role FROM api_tokens t "
                "JOIN staff s ON s.id = t.staff_id WHERE t.token_hash = $1 AND t.revoked IS NULL "
                "AND s.disabled IS NULL",
                token_hash(token),
            )
        return StaffMember.from_row(row) if row else None

    async def identities(self) -> list[tuple[str, str | None]]:
        """Every account's name and e-mail, disabled ones too: nobody may pose as them."""
        # Every POST asks (the impersonation check); a few rows, by the cheapest path.
        rows = await self.db.lookup_all("SELECT name, email FROM staff")
        return [(r["name"], r["email"]) for r in rows]
