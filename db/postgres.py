"""PostgreSQL through an asyncpg pool: the path for real sites and several processes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Hashable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from db.database import Row
from db.errors import Conflict, DatabaseError, InvalidValue, StorageUnavailable, Unavailable
from db.notices import ChangeNotices

log = logging.getLogger("kibitz.db")

# Any advisory-lock key will do, as long as every kibitz process uses the same one.
MIGRATION_LOCK = 0x6B6962
_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,  # class 08: the connection failed or was lost
    asyncpg.exceptions.CannotConnectNowError,  # starting up or recovering after a crash
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shut down, crashed, terminated
    asyncpg.exceptions.InterfaceError,
    # A pooled connection whose server died mid-conversation can be left in a state asyncpg
    # refuses to use ("cannot switch to state …"); the pool replaces it.
    asyncpg.exceptions.InternalClientError,
)


# Values PostgreSQL (class 22, "data exception": NUL in text, bigint out of range) or asyncpg
# itself ("invalid input for query argument", the same class) cannot take.
_INVALID_VALUES = (asyncpg.exceptions.DataError,)

# PostgreSQL answers but will not write: its disk is full (53100), or it is read-only (a
# standby, default_transaction_read_only; 25006). Answered like SQLite's full or read-only
# storage: 503, nothing stored.
_STORAGE_ERRORS = (
    asyncpg.exceptions.DiskFullError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)


def _translate(exc: Exception) -> DatabaseError:
    if isinstance(exc, asyncpg.exceptions.IntegrityConstraintViolationError):
        return Conflict(str(exc))
    if isinstance(exc, _INVALID_VALUES):
        return InvalidValue(str(exc))
    if isinstance(exc, _CONNECTION_ERRORS):
        return Unavailable(f"PostgreSQL did not answer: {exc}")
    if isinstance(exc, _STORAGE_ERRORS):
        return StorageUnavailable(f"PostgreSQL refused to write: {exc}")
    return DatabaseError(str(exc))


async def _reset(conn: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool: no transaction left open.

    asyncpg's default reset runs ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL`` on every release, a second round trip for each one-query read (a third of a cached
    thread read's time). kibitz keeps no session state: no SET, no LISTEN on pooled
    connections, no cursors outside transactions, and only transaction-scoped advisory locks.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class PostgresConnection:
    def __init__(self, conn: PoolConnectionProxy) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            return list(await self._conn.fetch(sql, *args))
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
            raise _translate(exc) from exc

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        try:
            return await self._conn.fetchrow(sql, *args)
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
            raise _translate(exc) from exc

    async def fetchval(self, sql: str, *args: Any) -> Any:
        try:
            return await self._conn.fetchval(sql, *args)
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
            raise _translate(exc) from exc

    async def execute(self, sql: str, *args: Any) -> None:
        try:
            await self._conn.execute(sql, *args)
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
            raise _translate(exc) from exc

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        try:
            await self._conn.executemany(sql, list(args))
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
            raise _translate(exc) from exc

    async def executescript(self, script: str) -> None:
        await self.execute(script)


class PostgresDatabase:
    dialect = "postgres"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self._url = url  # for the connection that listens for change notices
        # What change_mark() is made of: this process's writes, counted as each ends (no
        # store writes through read()), and the notices every process's commits send
        # (db/notices.py), once a server listens.
        self._writes = 0
        self._notices: ChangeNotices | None = None

    @classmethod
    async def open(cls, url: str, *, min_size: int = 2, max_size: int = 10) -> PostgresDatabase:
        try:
            pool = await asyncpg.create_pool(
                url, min_size=min_size, max_size=max_size, command_timeout=60, reset=_reset
            )
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
            raise Unavailable(
                f"cannot connect to PostgreSQL: {exc}. Check KIBITZ_DATABASE_URL "
                "and that the server is running."
            ) from exc
        return cls(pool, url)

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[PoolConnectionProxy]:
        try:
            conn = await self._pool.acquire()
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
            raise _translate(exc) from exc
        try:
            yield conn
        finally:
            try:
                await self._pool.release(conn)
            except (asyncpg.PostgresError, *_CONNECTION_ERRORS):
                # The connection died after the work was done (a commit may already be
                # durable): failing the caller now would report a saved write as lost.
                log.warning("could not release a PostgreSQL connection; the pool replaces it")

    async def lookup(self, sql: str, *args: Any) -> Row | None:
        rows = await self.lookup_all(sql, *args)
        return rows[0] if rows else None

    async def write_one(self, sql: str, *args: Any) -> Row | None:
        """One statement that writes (committed on its own), by :meth:`lookup`'s path."""
        try:
            rows = await self.lookup_all(sql, *args)
        finally:
            self._writes += 1  # ended, committed or not: change_mark() moves
        return rows[0] if rows else None

    async def lookup_all(self, sql: str, *args: Any) -> list[Row]:
        """A few-row read, as :meth:`read` would run it but without its layers: every cached
        thread read and counts request takes this path, and two context managers and a
        wrapper per call cost a tenth of such a request's CPU. Never for a write: those go
        through :meth:`write_one`, which moves :meth:`change_mark`."""
        pool = self._pool
        try:
            conn = await pool.acquire()
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
            raise _translate(exc) from exc
        try:
            return list(await conn.fetch(sql, *args))
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
            raise _translate(exc) from exc
        finally:
            try:
                await pool.release(conn)
            except (asyncpg.PostgresError, *_CONNECTION_ERRORS):
                log.warning("could not release a PostgreSQL connection; the pool replaces it")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[PostgresConnection]:
        async with self._acquire() as conn:
            yield PostgresConnection(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresConnection]:
        async with self._acquire() as conn:
            try:
                async with conn.transaction():
                    yield PostgresConnection(conn)
            except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
                raise _translate(exc) from exc
            finally:
                # Ended, committed or not: change_mark() moves before anyone checks again,
                # so this process's own readers never wait for the notice of its commit.
                self._writes += 1

    @asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[PostgresConnection]:
        async with self.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            yield conn

    def change_mark(self) -> Hashable | None:
        """This process's ended writes, and the change notices every process's
        commits send; None until :meth:`listen_for_changes` listens, and whenever it is not
        listening (every kept answer is then checked with a read of its own)."""
        heard = self._notices.mark() if self._notices is not None else None
        return None if heard is None else (self._writes, heard)

    def listen_for_changes(self) -> ChangeNotices:
        """Start listening for change notices (a serving process; commands need none)."""
        if self._notices is None:
            self._notices = ChangeNotices(self._url)
            self._notices.start()
        return self._notices

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.fetchval("SELECT 1")

    async def close(self) -> None:
        if self._notices is not None:
            await self._notices.stop()
        await self._pool.close()
