"""The one interface both database backends offer.

Queries are written once with ``$1``-style placeholders in the SQL subset SQLite and
PostgreSQL share (``RETURNING``, ``ON CONFLICT``, CTEs). The SQLite backend rewrites ``$n`` to
its ``?n``. Rows are read by column name; the stores turn them into frozen dataclasses.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar, overload

T = TypeVar("T")


def in_list(values: Sequence[T], first: int = 1) -> tuple[str, list[T]]:
    """Placeholders for ``IN (…)`` from ``$first`` on, and the values to bind to them.

    The list is padded to the next power of two by repeating its last value (which changes
    no ``IN``). Without that, every length is a statement of its own, and each connection's
    statement cache (sqlite3 keeps 128 compiled statements, asyncpg 100) fills with copies
    of one query that differ only in length: a process that reads pages of 1 to 20 comments
    through 6 connections slowly grew by tens of MiB that way (docs/reliability.md, "Soak").
    Padded, a list of up to 512 values is one of ten statements.
    """
    size = 1 << max(0, len(values) - 1).bit_length()
    padded = [*values, *[values[-1]] * (size - len(values))] if values else []
    return ", ".join(f"${i}" for i in range(first, first + len(padded))), padded


class Row(Protocol):
    """A result row as the drivers hand it out (``sqlite3.Row``, ``asyncpg.Record``).

    Not a ``Mapping``: neither driver's row has ``get`` or iterates over its keys, so the stores
    may only read columns by name (or position) and ask for ``keys()``, which on PostgreSQL is a
    one-shot iterator.
    """

    @overload
    def __getitem__(self, key: str, /) -> Any: ...

    @overload
    def __getitem__(self, key: int, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...


class Connection(Protocol):
    """A connection handed out for one read or one transaction."""

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def fetchval(self, sql: str, *args: Any) -> Any: ...

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None: ...


class Database(Protocol):
    dialect: str  # "sqlite" or "postgres": picks migration files and rare per-dialect SQL

    def read(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for reads; it sees only committed data."""

    async def lookup(self, sql: str, *args: Any) -> Row | None:
        """One row by primary or unique key, by the cheapest path the backend has.

        For the hottest tiny reads (a thread's ``last_seq`` on every cached thread read):
        SQLite runs them inline, which costs less than handing them to a reader thread.
        """

    async def lookup_all(self, sql: str, *args: Any) -> list[Row]:
        """A few rows by indexed keys (the threads a counts request names), as :meth:`lookup`."""

    async def write_one(self, sql: str, *args: Any) -> Row | None:
        """One statement that writes, committed on its own; its first row, if any."""

    def change_mark(self) -> Hashable | None:
        """A value that moves whenever anything is committed, if the backend has a cheap one.

        Answers kept while it stands need no check (``server/http/replay.py``). SQLite: its
        writer's commits and ``data_version``. PostgreSQL: this process's own work and the
        change notices of every process's commits, once a server listens (db/notices.py);
        None while it does not.
        """

    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A write transaction: committed when the block ends, rolled back on an exception."""

    def migration_lock(self) -> AbstractAsyncContextManager[Connection]:
        """A transaction that no other process can hold at the same time (for migrations)."""

    async def ping(self) -> None:
        """Raise :class:`db.errors.Unavailable` when the database does not answer."""

    async def close(self) -> None: ...


async def connect(url: str, *, readers: int = 4) -> Database:
    """Open the database named by a ``KIBITZ_DATABASE_URL``."""
    if url.startswith("sqlite:///"):
        from db.sqlite import SQLiteDatabase

        return await SQLiteDatabase.open(url.removeprefix("sqlite:///"), readers=readers)
    from db.postgres import PostgresDatabase

    return await PostgresDatabase.open(url)
