"""SQLite through aiosqlite: the embedded default.

One connection writes, behind an asyncio lock, with ``BEGIN IMMEDIATE`` so a transaction
never has to upgrade its lock half-way; a few others read. WAL lets reads run beside the
writer, and ``synchronous=FULL`` makes a commit durable before we answer 2xx.

When the storage refuses a write (a full disk, a read-only data directory, a failed write)
the error is :class:`~db.errors.StorageUnavailable` and the writer connection is opened
anew before the next write, so that kibitz writes again as soon as the storage does,
without a restart. :meth:`SQLiteDatabase.ping` fails while writes fail, so ``/healthz``
says 503 then, and 200 as soon as they work.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Hashable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from db.database import Row
from db.errors import Conflict, DatabaseError, InvalidValue, StorageUnavailable, Unavailable

log = logging.getLogger("kibitz.db")
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

# Primary result codes (the low byte of the extended ones) that mean the storage refused:
# SQLITE_FULL (no space), SQLITE_READONLY (a file or directory that cannot be written, a
# connection opened while it could not), SQLITE_IOERR (a write, fsync or read that failed:
# EROFS and EPERM from an open file come back as SQLITE_IOERR_WRITE), SQLITE_CANTOPEN (the
# log or a temporary file could not be created), SQLITE_PERM.
_STORAGE_CODES = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PERM,
    }
)
# A write refused less than this long ago answers /healthz by itself. After it, the check
# tries a write of its own, so that health comes back with no comment sent. Not at once:
# on a full disk a one-page write can fit where a comment's pages do not.
_PROBE_AFTER = 2.0

# How often change_mark() looks for commits by other processes (kibitz commands run beside
# the server): answers given again may miss such a commit for this long (docs/performance.md).
_OTHERS_EVERY = 0.05

# Another process holds the lock (after busy_timeout), or the log's locks were in flux
# (SQLITE_PROTOCOL): a later try can succeed.
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_PROTOCOL})


def _primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)  # None when the module raised it itself
    return None if code is None else code & 0xFF


def _translate(exc: Exception, doing: str = "") -> DatabaseError:
    """The data layer's error for a driver error: the one place SQLite's codes are read."""
    where = f"SQLite {doing}: " if doing else "SQLite: "
    if isinstance(exc, sqlite3.IntegrityError):  # a deferred constraint fails at COMMIT
        return Conflict(f"{where}{exc}")
    if isinstance(exc, _INVALID_VALUES):
        return InvalidValue(str(exc))
    if isinstance(exc, sqlite3.Error):
        code = _primary_code(exc)
        if code in _STORAGE_CODES:
            name = getattr(exc, "sqlite_errorname", "")
            return StorageUnavailable(f"{where}the storage refused: {exc} ({name})")
        if code in _BUSY_CODES:
            return Unavailable(f"{where}{exc}")
    return DatabaseError(f"{where}{exc}")


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
        except (sqlite3.Error, *_INVALID_VALUES) as exc:
            raise _translate(exc) from exc

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
        except (sqlite3.Error, *_INVALID_VALUES) as exc:
            raise _translate(exc) from exc

    async def executescript(self, script: str) -> None:
        await self._conn.executescript(script)


# How long opening waits for other processes that hold the database's locks.
_OPEN_PATIENCE = 30.0


async def _open(path: str) -> aiosqlite.Connection:
    """A connection in WAL mode, tried again while other processes hold the locks.

    Processes that start together (``kibitz migrate`` in each replica) can meet in a lock
    cycle when one turns the file to WAL while another reads it: SQLite then answers
    SQLITE_BUSY at once instead of calling the busy handler, so the wait is ours.
    """
    deadline = time.monotonic() + _OPEN_PATIENCE
    pause = 0.01
    while True:
        try:
            return await _open_once(path)
        except sqlite3.OperationalError as exc:
            if _primary_code(exc) not in _BUSY_CODES or time.monotonic() + pause > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)


async def _open_once(path: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None, timeout=_OPEN_PATIENCE)
    try:
        conn.row_factory = sqlite3.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=30000")
    except BaseException:
        # aiosqlite's thread is not a daemon: a connection left open keeps the process
        # from exiting after the error is reported.
        await conn.close()
        raise
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
        # Why the last write failed, and when, while the storage refuses writes; None once
        # one works.
        self._refused: StorageUnavailable | None = None
        self._refused_at = 0.0
        # What change_mark() is made of: commits here, and data_version when last read.
        self._commits = 0
        self._others = 0
        self._others_read_at = -_OTHERS_EVERY

    @classmethod
    async def open(cls, path: str, *, readers: int = 4) -> SQLiteDatabase:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        opened: list[aiosqlite.Connection] = []
        try:
            for _ in range(1 + max(1, readers)):
                opened.append(await _open(path))
            inline = _open_inline(path)
        except BaseException as exc:
            for conn in opened:
                with contextlib.suppress(sqlite3.Error):
                    await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise Unavailable(
                    f"cannot open SQLite database {path!r}: {exc} (check KIBITZ_DATABASE_URL, "
                    "the file's permissions, and that no other program holds it locked)"
                ) from exc
            raise
        return cls(path, opened[0], opened[1:], inline)

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
            if _primary_code(exc) not in _BUSY_CODES:
                raise _translate(exc) from exc
            async with self.read() as conn:
                return await conn.fetch(sql, *args)
        except (sqlite3.Error, *_INVALID_VALUES) as exc:
            raise _translate(exc) from exc
        return rows

    async def write_one(self, sql: str, *args: Any) -> Row | None:
        async with self.transaction() as conn:
            return await conn.fetchrow(sql, *args)

    def change_mark(self) -> Hashable | None:
        """This process's commits, and ``PRAGMA data_version`` for everyone else's.

        The count moves with every commit of the writer at once. Another process on the
        same file (a ``kibitz`` command run beside the server: an import, an erasure) shows
        in ``data_version`` of the inline reader, which never writes; reading it costs a
        statement, so it is read at most every :data:`_OTHERS_EVERY` seconds.
        """
        now = time.monotonic()
        if now - self._others_read_at >= _OTHERS_EVERY:
            try:
                row = self._inline.execute("PRAGMA data_version").fetchone()
            except sqlite3.Error:
                return None
            self._others, self._others_read_at = int(row[0]), now
        return (self._commits, self._others)

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
        except sqlite3.Error as exc:
            raise _translate(exc, statement) from exc

    async def _rollback(self) -> None:
        # SQLite rolls some failures back itself; then ROLLBACK would fail, and that is fine.
        if self._writer.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                await self._writer.execute("ROLLBACK")

    async def _renew_writer(self) -> None:
        """Open the writer again after the storage refused a write (under the write lock).

        The old connection may hold a state no retry gets past: a file opened read-only
        (SQLITE_READONLY for good), a pager left in its error state, a database file that
        was replaced. A new one sees the storage as it is now. While the storage still
        refuses, opening may fail or give a read-only connection; the next write's error
        says so, and the write after it tries again.
        """
        try:
            fresh = await _open(self.path)
        except sqlite3.Error as exc:
            raise _translate(exc, "reopening the writer") from exc
        old, self._writer = self._writer, fresh
        self._all = [fresh if conn is old else conn for conn in self._all]
        with contextlib.suppress(sqlite3.Error):
            await old.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SQLiteConnection]:
        async with self._write_lock:
            try:
                if self._refused is not None:
                    await self._renew_writer()
                async with self._committed() as conn:
                    yield conn
            except StorageUnavailable as exc:
                if self._refused is None:
                    log.warning("writes answer 503 until the storage takes them again: %s", exc)
                self._refused, self._refused_at = exc, time.monotonic()
                raise
            self._commits += 1
            if self._refused is not None:
                log.warning("the storage takes writes again")
                self._refused = None

    @asynccontextmanager
    async def _committed(self) -> AsyncIterator[SQLiteConnection]:
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
        """Raise while the database cannot be read, or cannot write since a write failed.

        A full or read-only disk still reads fine. So after a refused write the answer is
        that refusal for a while, then a write of the check's own: ``user_version`` set to
        its own value (no table changes, one page to the log).
        """
        try:
            async with self.read() as conn:
                await conn.fetchval("SELECT 1")
        except DatabaseError as exc:
            raise Unavailable(str(exc)) from exc
        if self._refused is None:
            return
        if time.monotonic() - self._refused_at < _PROBE_AFTER:
            raise StorageUnavailable(str(self._refused))
        async with self.transaction() as conn:
            version = int(await conn.fetchval("PRAGMA user_version"))
            await conn.execute(f"PRAGMA user_version = {version}")

    async def close(self) -> None:
        self._inline.close()
        for conn in self._all:
            await conn.close()
