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


class StorageUnavailable(Unavailable):
    """The database answers but its storage refuses to write: the disk is full, the data
    directory became read-only, or the disk failed a write. Nothing was stored; writes work
    again, without a restart, once the storage takes them (docs/reliability.md)."""


class InvalidValue(DatabaseError):
    """The driver refused a value it was given (an id past 64 bits, NUL in text, a lone
    surrogate). The boundary in ``server/discussion/values.py`` should have refused it first;
    this is the last guard, answered as a 400 rather than a 500."""
