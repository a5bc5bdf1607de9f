"""Versioned schema migrations: numbered ``.sql`` files in ``db/migrations``.

``NNN_name.sql`` applies to both engines; ``NNN_name.postgres.sql`` / ``NNN_name.sqlite.sql``
exist only where the dialects really differ. Each runs in one transaction under a lock that
other processes wait for, so two servers starting at once migrate exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from db.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    def statements(self) -> list[str]:
        # Split on semicolons that end a line: enough for plain DDL, and SQLite's driver runs
        # one statement per call inside a transaction.
        text = "\n".join(
            line
            for line in self.path.read_text().splitlines()
            if not line.lstrip().startswith("--")
        )
        return [s.strip() for s in text.split(";\n") if s.strip().rstrip(";").strip()]


def available(dialect: str) -> list[Migration]:
    found: dict[str, Path] = {}
    for path in sorted(MIGRATIONS.glob("*.sql")):
        parts = path.name.split(".")
        if len(parts) == 3 and parts[1] != dialect:
            continue
        found[parts[0]] = path
    return [Migration(version, path) for version, path in sorted(found.items())]


async def migrate(db: Database) -> list[str]:
    """Apply what is missing; return the versions applied (empty when up to date)."""
    applied: list[str] = []
    async with db.migration_lock() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version TEXT PRIMARY KEY, applied TEXT NOT NULL)"
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in available(db.dialect):
            if migration.version in done:
                continue
            for statement in migration.statements():
                await conn.execute(statement.rstrip(";"))
            await conn.execute(
                "INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)",
                migration.version,
                datetime.now(UTC).isoformat(),
            )
            applied.append(migration.version)
    return applied
