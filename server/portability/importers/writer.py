"""The one place imported records are written: in batches, undone completely on failure.

The source is read twice: ``scan()`` validates the whole input (streaming) and refuses it
before the first write; ``records()`` then streams threads and comments, which go to the
database in short transactions of ``batch_size`` comments. Parsing runs in a thread of its
own, a batch or two ahead of the writes (a bounded queue), so XML parsing and sanitising on
one core overlap the database's work on the other. On SQLite a short pause separates batches,
so a live site's writes get the lock in between. If anything fails after the first batch (a
database error, Ctrl-C), the run is undone, so a failed import leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from db.database import Database
from db.imports import CommentIn, ImportStore, ThreadIn
from db.models import Event, now
from server.portability.importers.progress import Progress, Silent
from server.portability.importers.report import Report

log = logging.getLogger("kibitz.import")
BATCH = 500
# SQLite has one writer, and a writer waiting for the lock polls every 100 ms at most: a pause
# this long between batches lets a live site's comment in, however long the import runs.
SQLITE_PAUSE = 0.1

Publish = Callable[[list[Event]], Awaitable[None]]


class Source(Protocol):
    fmt: str
    path: str
    report: Report

    def scan(self) -> int: ...

    def records(self) -> Iterator[ThreadIn | CommentIn]: ...


async def run_import(
    db: Database,
    source: Source,
    *,
    retention_days: int,
    progress: Progress | None = None,
    batch_size: int = BATCH,
    publish: Publish | None = None,
    pause: float | None = None,
) -> Report:
    """Validate, then write ``source`` into ``db``; return the report of what happened.

    ``publish`` receives each batch's events after its commit (a running server's hub);
    readers who connect later get them from the database anyway. ``pause`` (default: 0.1 s
    on SQLite, none on PostgreSQL) separates batches so other writers are never starved.
    """
    if pause is None:
        pause = SQLITE_PAUSE if db.dialect == "sqlite" else 0.0
    report = source.report
    total = await asyncio.to_thread(source.scan)  # raises ImportRefused: nothing written yet
    progress = progress if progress is not None else Silent()
    progress.total = total
    store = ImportStore(db)
    cutoff = now() - timedelta(days=retention_days)
    run = await store.begin(source.fmt, source.path)
    thread_ids: dict[str, int] = {}
    batches = _Batches(source.records(), batch_size, lambda c: _retained(c, cutoff))
    try:
        while (batch := await asyncio.to_thread(batches.next)) is not None:
            threads, comments, dropped = batch
            result = await store.write_batch(run, threads, comments, thread_ids)
            report.add(result, thread_ids)
            report.addresses_dropped += sum(c.source in dropped for c, _ in result.inserted)
            progress.update(len(comments))
            if publish is not None and result.events:
                await publish(result.events)
            if pause:
                await asyncio.sleep(pause)
        await store.finish(run)
    except BaseException:
        log.warning("import of %s failed; undoing run %s", source.path, run)
        batches.close()
        try:
            await asyncio.shield(store.undo(run))
        except Exception:
            # The database is gone too: the run stays marked unfinished, and the next
            # `kibitz import` removes it (undo_unfinished) before it starts.
            log.exception("could not undo import run %s; the next import will", run)
        raise
    finally:
        batches.close()
        progress.close()
    return report


_END = object()
Batch = tuple[list[ThreadIn], list[CommentIn], set[str]]  # + sources whose address went


class _Batches:
    """Reads records in a thread and hands them out a batch at a time, at most two ahead."""

    def __init__(
        self,
        records: Iterator[ThreadIn | CommentIn],
        size: int,
        prepare: Callable[[CommentIn], tuple[CommentIn, bool]],
    ) -> None:
        self.records, self.size, self.prepare = records, size, prepare
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._read, name="kibitz-import-reader", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            threads: list[ThreadIn] = []
            comments: list[CommentIn] = []
            dropped: set[str] = set()
            for record in self.records:
                if self.stopped.is_set():
                    return
                if isinstance(record, ThreadIn):
                    threads.append(record)
                else:
                    comment, was_dropped = self.prepare(record)
                    comments.append(comment)
                    if was_dropped:
                        dropped.add(comment.source)
                if len(comments) >= self.size or len(threads) >= self.size:
                    self._put((threads, comments, dropped))
                    threads, comments, dropped = [], [], set()
            if threads or comments:
                self._put((threads, comments, dropped))
            self._put(_END)
        except BaseException as exc:  # handed to the writer, which undoes the run
            self._put(exc)

    def _put(self, item: Any) -> None:
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def next(self) -> Batch | None:
        """The next batch, None at the end; re-raises what the reader raised."""
        while not self.stopped.is_set():
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _END:
                return None
            if isinstance(item, BaseException):
                raise item
            # The queue holds batches, errors and the end marker; only a batch is left here.
            return item  # type: ignore[no-any-return]
        return None

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)


def _retained(comment: CommentIn, cutoff: datetime) -> tuple[CommentIn, bool]:
    """KIBITZ_ADDRESS_RETENTION_DAYS counts from the comment's date, imported or not."""
    if comment.address is not None and comment.created < cutoff:
        return replace(comment, address=None), True
    return comment, False


async def undo_unfinished(db: Database) -> list[str]:
    """Remove runs whose process died mid-way; return a line for each."""
    store = ImportStore(db)
    done = []
    for run, fmt, file in await store.unfinished():
        await store.undo(run)
        done.append(f"removed the unfinished {fmt} import of {file} (run {run})")
    return done
