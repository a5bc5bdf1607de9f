"""The one place imported records are written: in batches, undone completely on failure.

The source is read twice: ``scan()`` validates the whole input (streaming) and refuses it
before the first write; ``records()`` then streams threads and comments, which go to the
database in short transactions of ``batch_size`` comments. If anything fails after the first
batch (a database error, Ctrl-C), the run is undone, so a failed import leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from db.database import Database
from db.imports import CommentIn, ImportStore, ThreadIn
from db.models import Event, now
from server.importers.progress import Progress, Silent
from server.importers.report import Report

log = logging.getLogger("kibitz.import")
BATCH = 500

Publish = Callable[[list[Event]], Awaitable[None]]


class Source(Protocol):
    fmt: str
    path: str
    report: Report

    def scan(self) -> int: ...

    def records(self) -> Iterator[ThreadIn | CommentIn]: ...


async def run_import(db: Database, source: Source, *, retention_days: int,
                     progress: Progress | None = None, batch_size: int = BATCH,
                     publish: Publish | None = None) -> Report:
    """Validate, then write ``source`` into ``db``; return the report of what happened.

    ``publish`` receives each batch's events after its commit (a running server's hub);
    readers who connect later get them from the database anyway.
    """
    report = source.report
    total = await asyncio.to_thread(source.scan)  # raises ImportRefused: nothing written yet
    progress = progress if progress is not None else Silent()
    progress.total = total
    store = ImportStore(db)
    cutoff = now() - timedelta(days=retention_days)
    run = await store.begin(source.fmt, source.path)
    thread_ids: dict[str, int] = {}
    threads: list[ThreadIn] = []
    comments: list[CommentIn] = []

    async def flush() -> None:
        if not threads and not comments:
            return
        result = await store.write_batch(run, threads, comments, thread_ids)
        report.add(result, thread_ids)
        progress.update(len(comments))
        threads.clear()
        comments.clear()
        if publish is not None and result.events:
            await publish(result.events)

    try:
        for record in source.records():
            if isinstance(record, ThreadIn):
                threads.append(record)
            else:
                comments.append(_retained(record, cutoff, report))
            if len(comments) >= batch_size or len(threads) >= batch_size:
                await flush()
        await flush()
        await store.finish(run)
    except BaseException:
        log.warning("import of %s failed; undoing run %s", source.path, run)
        await asyncio.shield(store.undo(run))
        raise
    finally:
        progress.close()
    return report


def _retained(comment: CommentIn, cutoff: datetime, report: Report) -> CommentIn:
    """KIBITZ_ADDRESS_RETENTION_DAYS counts from the comment's date, imported or not."""
    if comment.address is not None and comment.created < cutoff:
        report.addresses_dropped += 1
        return replace(comment, address=None)
    return comment


async def undo_unfinished(db: Database) -> list[str]:
    """Remove runs whose process died mid-way; return a line for each."""
    store = ImportStore(db)
    done = []
    for run, fmt, file in await store.unfinished():
        await store.undo(run)
        done.append(f"removed the unfinished {fmt} import of {file} (run {run})")
    return done
