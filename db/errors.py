"""Errors of the data layer, the same for SQLite and PostgreSQL.

Driver exceptions (``sqlite3.IntegrityError``, ``asyncpg.UniqueViolationError``, lost
connections) are translated at the backend boundary, so nothing above ``db/`` imports a driver.
"""

from __future__ import annotations


class DatabaseError(Exception):
    """The root of every error the data layer raises."""


class Conflict(DatabaseError):
    """A uniqueness or foreign-key rule refused the write."""


class Unavailable(DatabaseError):
    """The database cannot be reached; the operator should check it is running."""
