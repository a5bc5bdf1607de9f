"""A lone comment on PostgreSQL is one statement; it must decide exactly as the transaction.

The statement reads the thread and the parent from a snapshot taken before it waits for the
thread's row lock. These tests hold that lock in another connection while it waits, change
the thread under it, and check that the comment sees the change as the transaction would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from db.comments import (
    CommentStore,
    DuplicateSubmission,
    InvalidParent,
    NewComment,
    Outbox,
    Submission,
    ThreadClosed,
    _Pending,
)
from db.database import Database, connect
from db.migrate import migrate
from db.notices import CHANNEL
from db.webhooks import WANTED

pytestmark = pytest.mark.postgres


def new(text: str, parent: int | None = None, status: str = "approved") -> NewComment:
    return NewComment(
        author="Ada",
        email="ada@example.org",
        website=None,
        text=text,
        html=f"<p>{text}</p>",
        status=status,
        parent_id=parent,
    )


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[Database]:
    database = await connect(pg_url)
    await migrate(database)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def other(pg_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, to hold the thread's lock while a comment waits for it."""
    conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        yield conn
    finally:
        await conn.close()


async def waiting_for_a_lock(conn: asyncpg.Connection, task: asyncio.Task[object]) -> None:
    """Until some other backend waits for a lock (the comment's statement behind ours); a
    loaded machine may take seconds to get the comment that far."""
    for _ in range(3000):
        assert not task.done(), "the comment did not wait for the thread's lock"
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("nothing waited for the thread's lock")


async def test_a_reply_waiting_for_the_lock_sees_its_parent_deleted_meanwhile(
    db: Database, other: asyncpg.Connection
) -> None:
    """A parent deleted (under the thread's lock) while a reply waits: the reply is refused."""
    store = CommentStore(db)
    parent, _ = await store.add("/t", new("parent"), create_thread=True)
    await store.add("/t", new("warm"), create_thread=True)  # prepare the statement
    async with other.transaction():
        # What CommentStore.change does to delete it: lock, status, seq and event.
        await other.execute(
            "UPDATE threads SET last_seq = last_seq + 1 WHERE id = $1", parent.thread_id
        )
        await other.execute("UPDATE comments SET status = 'deleted' WHERE id = $1", parent.id)
        reply = asyncio.create_task(store.add("/t", new("reply", parent.id), create_thread=True))
        await waiting_for_a_lock(other, reply)
    with pytest.raises(InvalidParent):
        await reply
    assert await other.fetchval("SELECT count(*) FROM comments WHERE text = 'reply'") == 0


async def test_a_reply_waiting_for_the_lock_is_stored_when_its_parent_stands(
    db: Database, other: asyncpg.Connection
) -> None:
    """Another comment committed meanwhile: the reply is stored, with the next seq."""
    store = CommentStore(db)
    parent, _ = await store.add("/t", new("parent"), create_thread=True)
    async with other.transaction():
        await other.execute(
            "UPDATE threads SET last_seq = last_seq + 1 WHERE id = $1", parent.thread_id
        )
        await other.execute(
            "INSERT INTO events (thread_id, seq, type, comment_id, created) "
            "VALUES ($1, 2, 'comment.updated', $2, now())",
            parent.thread_id,
            parent.id,
        )
        reply = asyncio.create_task(store.add("/t", new("reply", parent.id), create_thread=True))
        await waiting_for_a_lock(other, reply)
    comment, events = await reply
    assert comment.parent_id == parent.id
    assert [e.seq for e in events] == [3]


async def test_a_comment_waiting_for_the_lock_sees_the_thread_closed_meanwhile(
    db: Database, other: asyncpg.Connection
) -> None:
    """A thread closed while a comment waits for its lock takes no comment."""
    store = CommentStore(db)
    first, _ = await store.add("/t", new("first"), create_thread=True)
    async with other.transaction():
        await other.execute("UPDATE threads SET closed = 1 WHERE id = $1", first.thread_id)
        late = asyncio.create_task(store.add("/t", new("late"), create_thread=True))
        await waiting_for_a_lock(other, late)
    with pytest.raises(ThreadClosed):
        await late
    seq = await other.fetchval("SELECT last_seq FROM threads WHERE id = $1", first.thread_id)
    assert seq == 1  # no seq was taken for the refused comment


async def test_a_taken_key_stores_nothing_and_keeps_the_first_comment(db: Database) -> None:
    """The same submission key twice: one comment, and the key names it."""
    store = CommentStore(db)
    await store.add("/t", new("first"), create_thread=True)
    key = Submission("key-1", "hash", 201)
    comment, _ = await store.add("/t", new("keyed"), create_thread=True, submission=key)
    with pytest.raises(DuplicateSubmission):
        await store.add("/t", new("keyed again"), create_thread=True, submission=key)
    found = await store.submitted("key-1")
    assert found is not None and found.comment_id == comment.id
    _, shown = await store.visible_with_cursor(comment.thread_id)
    assert [c.text for c in shown] == ["first", "keyed"]


async def test_a_comment_an_outbox_wants_is_written_with_its_outbox_row(db: Database) -> None:
    """With a webhook endpoint listening, the comment and its outbox row commit together."""
    store = CommentStore(db)
    written: list[str] = []

    async def write(conn: object, changes: list[object]) -> int:
        written.extend(c.comment.text for c in changes)  # type: ignore[attr-defined]
        return len(changes)

    woken: list[bool] = []
    store.outbox.append(Outbox(write, WANTED))
    store.outbox_committed.append(lambda: woken.append(True))
    await store.add("/t", new("nobody listens"), create_thread=True)  # creates the thread
    await store.add("/t", new("still nobody"), create_thread=True)
    assert written == ["nobody listens"]  # only the transaction that created the thread
    await db.lookup(
        "INSERT INTO webhook_endpoints (url, events, secret, private, created) "
        "VALUES ('https://hooks.example.org/', ',comment.created,', 'whsec_x', 0, now()) "
        "RETURNING id"
    )
    await store.add("/t", new("heard"), create_thread=True)
    assert written == ["nobody listens", "heard"]
    assert len(woken) == 2


async def test_the_transaction_takes_the_thread_lock_before_the_submission_key(
    db: Database, other: asyncpg.Connection, pg_url: str
) -> None:
    """Both paths take the thread's lock first, then the key. In the other order, one key
    sent to two servers at once deadlocked: the transaction held the key and waited for the
    lock that the one-statement path held while it waited for the key (a 500).

    The transaction waits for the lock here; meanwhile the key must still be free.
    """
    store = CommentStore(db)
    first, _ = await store.add("/t", new("first"), create_thread=True)
    keyed = _Pending("/t", new("keyed"), True, None, Submission("split-key", "hash", 201))
    async with other.transaction():
        await other.execute("SELECT 1 FROM threads WHERE id = $1 FOR UPDATE", first.thread_id)
        batch = asyncio.create_task(store._insert([keyed]))
        await waiting_for_a_lock(other, batch)
        third = await asyncpg.connect(pg_url)
        try:
            await third.execute("SET lock_timeout = '5s'")  # a held key: LockNotAvailable
            claimed = await third.fetchval(
                "INSERT INTO submissions (key, body_hash, status, created) "
                "VALUES ('split-key', 'other', 201, now()) ON CONFLICT DO NOTHING RETURNING key"
            )
        finally:
            await third.close()
        assert claimed == "split-key"
    [outcome] = await batch
    assert isinstance(outcome, DuplicateSubmission)  # the key was taken meanwhile


async def test_adding_comments_sends_no_change_notice_and_changing_one_does(
    db: Database, other: asyncpg.Connection
) -> None:
    """A comment stored by the one statement or by the transaction commits without a notice
    (notices serialise commits; db/notices.py bounds what this leaves); marking one as spam
    sends one, as every other change of a thread does."""
    heard: list[str] = []
    await other.add_listener(CHANNEL, lambda *args: heard.append(args[2]))
    store = CommentStore(db)
    first, _ = await store.add("/t", new("first"), create_thread=True)  # a new thread: added
    await store.add("/t", new("alone"), create_thread=True)  # the one statement
    keyed = _Pending("/t", new("batched"), True, None, Submission("a-key", "hash", 201))
    [batched] = await store._insert([keyed])  # the transaction
    assert not isinstance(batched, Exception)
    await other.execute("SELECT 1")  # every notice sent before this is delivered by now
    assert heard == []
    await store.change(first.id, status="spam")
    for _ in range(500):
        if heard:
            break
        await asyncio.sleep(0.01)
    assert heard == [CHANNEL]
