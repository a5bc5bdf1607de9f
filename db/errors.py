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


class InvalidValue(DatabaseError):
    """The driver refused a value it was given (an id past 64 bits, NUL in text, a lone
    surrogate). The boundary in ``server/discussion/values.py`` should have refused it first;
    this is the last guard, answered as a 400 rather than a 500."""
