"""SQLite through aiosqlite: the embedded default.

One connection writes, behind an asyncio lock, with ``BEGIN IMMEDIATE`` so a transaction
never has to upgrade its lock half-way; a few others read. WAL lets reads run beside the
writer, and ``synchronous=FULL`` makes a commit durable before we answer 2xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from db.database import Row
from db.errors import Conflict, DatabaseError, InvalidValue, Unavailable

_PLACEHOLDER = re.compile(r"\$(\d+)")


def _adapt_datetime(value: datetime) -> str:
    """One fixed, sortable format (``0999-01-02T03:04:05.000006Z``) both engines read back.

    Text comparisons in SQL then order like the instants. ``strftime("%Y")`` would write the
    year 999 as "999", which ``fromisoformat`` refuses on every later read: pad by hand.
    """
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the database")
    v = value.astimezone(UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond:06d}Z"
    )


sqlite3.register_adapter(datetime, _adapt_datetime)


# What sqlite3 raises for an argument it cannot bind: an int past 64 bits, a lone surrogate.
_INVALID_VALUES = (OverflowError, UnicodeEncodeError)


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """``$n`` placeholders as SQLite's ``?n``; the same few hundred statements run all day."""
    return _PLACEHOLDER.sub(r"?\1", sql)


class SQLiteConnection:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            async with self._conn.execute(translate(sql), args) as cursor:
                return list(await cursor.fetchall())
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from exc
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc)) from exc
        except _INVALID_VALUES as exc:
            raise InvalidValue(str(exc)) from exc

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]

    async def execute(self, sql: str, *args: Any) -> None:
        await self.fetch(sql, *args)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        try:
            await self._conn.executemany(translate(sql), args)
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from exc
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc)) from exc
        except _INVALID_VALUES as exc:
            raise InvalidValue(str(exc)) from exc

    async def executescript(self, script: str) -> None:
        await self._conn.executescript(script)


async def _open(path: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=FULL")
    await conn.execute("PRAGMA foreign_keys=ON")
    await conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _open_inline(path: str) -> sqlite3.Connection:
    """A read-only connection used on the event loop's thread only (see ``lookup``)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=0")
    conn.execute("PRAGMA query_only=ON")
    return conn


class SQLiteDatabase:
    dialect = "sqlite"

    def __init__(
        self,
        path: str,
        writer: aiosqlite.Connection,
        readers: list[aiosqlite.Connection],
        inline: sqlite3.Connection,
    ) -> None:
        self.path = path
        self._inline = inline
        self._writer = writer
        self._write_lock = asyncio.Lock()
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        for reader in readers:
            self._readers.put_nowait(reader)
        self._all = [writer, *readers]

    @classmethod
    async def open(cls, path: str, *, readers: int = 4) -> SQLiteDatabase:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            writer = await _open(path)
            pool = [await _open(path) for _ in range(max(1, readers))]
            inline = _open_inline(path)
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot open SQLite database {path!r}: {exc}") from exc
        return cls(path, writer, pool, inline)

    async def lookup(self, sql: str, *args: Any) -> Row | None:
        rows = await self.lookup_all(sql, *args)
        return rows[0] if rows else None

    async def lookup_all(self, sql: str, *args: Any) -> list[Row]:
        """Run a few-row indexed read on the event loop: less than a hop to a thread.

        A WAL reader does not wait for the writer. The rare moments it would have to wait
        (a checkpoint resetting the log, recovery) fail at once with busy_timeout 0, and the
        read goes to a reader thread instead: the event loop never waits for a lock.
        """
        try:
            rows = self._inline.execute(translate(sql), args).fetchall()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise DatabaseError(str(exc)) from exc
            async with self.read() as conn:
                return await conn.fetch(sql, *args)
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc)) from exc
        except _INVALID_VALUES as exc:
            raise InvalidValue(str(exc)) from exc
        return rows

    @asynccontextmanager
    async def read(self) -> AsyncIterator[SQLiteConnection]:
        conn = await self._readers.get()
        try:
            yield SQLiteConnection(conn)
        finally:
            self._readers.put_nowait(conn)

    async def _control(self, statement: str) -> None:
        try:
            await self._writer.execute(statement)
        except sqlite3.IntegrityError as exc:  # a deferred constraint fails at COMMIT
            raise Conflict(f"SQLite {statement}: {exc}") from exc
        except sqlite3.OperationalError as exc:
            # "database is locked" after busy_timeout: another process holds the write lock.
            raise Unavailable(f"SQLite {statement}: {exc}") from exc
        except sqlite3.Error as exc:
            raise DatabaseError(f"SQLite {statement}: {exc}") from exc

    async def _rollback(self) -> None:
        # SQLite rolls some failures back itself; then ROLLBACK would fail, and that is fine.
        if self._writer.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                await self._writer.execute("ROLLBACK")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SQLiteConnection]:
        async with self._write_lock:
            await self._control("BEGIN IMMEDIATE")
            try:
                yield SQLiteConnection(self._writer)
            except BaseException:
                await asyncio.shield(self._rollback())
                raise
            try:
                await self._control("COMMIT")
            except BaseException:
                # A failed COMMIT leaves the transaction open; without this every later
                # BEGIN would fail with "cannot start a transaction within a transaction".
                await asyncio.shield(self._rollback())
                raise

    def migration_lock(self) -> AbstractAsyncContextManager[SQLiteConnection]:
        # BEGIN IMMEDIATE already excludes every other writer, in this process and others.
        return self.transaction()

    async def ping(self) -> None:
        try:
            async with self.read() as conn:
                await conn.fetchval("SELECT 1")
        except DatabaseError as exc:
            raise Unavailable(str(exc)) from exc

    async def close(self) -> None:
        self._inline.close()
        for conn in self._all:
            await conn.close()
