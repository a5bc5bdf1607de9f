"""Votes: one row per voter and comment, and the comment's counts kept beside it.

A vote and its change of the comment's ``up``/``down`` are one transaction, so counts never
drift from the rows. The thread's ``votes_seq`` (part of its version, which keys cached
reads) is bumped apart, by :meth:`VoteStore.bump`, for many votes at once: a busy thread's
votes then never queue on the thread's row, only on their own comment's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from db.database import Connection, Database, in_list
from db.errors import DatabaseError
from db.groupcommit import GroupCommit
from db.models import now


class NotVotable(DatabaseError):
    """The comment does not exist or readers cannot see it."""


@dataclass(frozen=True)
class Tally:
    comment_id: int
    thread_id: int
    uri: str
    up: int
    down: int
    mine: int
    changed: bool


Ballot = tuple[int, str, int]  # (comment id, voter, value)
Votes = dict[tuple[int, str], int]  # (comment id, voter) → value; 0 for none


class VoteStore:
    """Votes arriving together share one transaction (:mod:`db.groupcommit`): one flush and
    a few statements for many votes. A batch locks its comments' rows in id order, so two
    processes' batches take them in the same order and never deadlock."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._batches: GroupCommit[str, Ballot, Tally] = GroupCommit(self._write)

    async def vote(self, comment_id: int, voter: str, value: int) -> Tally:
        """Set ``voter``'s vote on the comment to ``value`` (1, -1, or 0 to withdraw)."""
        return await self._batches.submit("votes", (comment_id, voter, value))

    async def _write(self, key: str, batch: list[Ballot]) -> list[Tally | Exception]:
        try:
            return await self._transaction(batch)
        except DatabaseError:
            if len(batch) == 1:
                raise
        # One vote the database refuses must not fail the others: each on its own.
        results: list[Tally | Exception] = []
        for ballot in batch:
            try:
                results.extend(await self._transaction([ballot]))
            except DatabaseError as exc:
                results.append(exc)
        return results

    async def _transaction(self, batch: list[Ballot]) -> list[Tally | Exception]:
        """The whole batch in a constant number of statements, whatever its size.

        First the batch's comments are locked, in id order, and their counts read; then, under
        those locks (so no other process changes these votes meanwhile), the stored votes of
        the batch's voters. The ballots are then applied here in arrival order, as if one after
        another, and only the net change is written: each changed vote row once, each comment's
        counts once. A voter's two ballots on one comment in a batch count as the later one.
        """
        comment_ids = sorted({ballot[0] for ballot in batch})
        async with self.db.transaction() as conn:
            marks, padded = _in_list(comment_ids)
            lock = " FOR NO KEY UPDATE OF c" if self.db.dialect == "postgres" else ""
            rows = await conn.fetch(
                "SELECT c.id, c.thread_id, t.uri, c.up, c.down FROM comments c "
                f"JOIN threads t ON t.id = c.thread_id WHERE c.id IN ({marks}) "
                f"AND c.status = 'approved' ORDER BY c.id{lock}",
                *padded,
            )
            found = {r["id"]: _Counts(r["thread_id"], r["uri"], r["up"], r["down"]) for r in rows}
            stored = await _stored(
                conn, list(found), sorted({b[1] for b in batch if b[0] in found})
            )
            votes = dict(stored)
            results: list[Tally | Exception] = []
            for comment_id, voter, value in batch:
                counts = found.get(comment_id)
                if counts is None:
                    results.append(NotVotable(str(comment_id)))
                    continue
                before = votes.get((comment_id, voter), 0)
                if value != before:
                    votes[comment_id, voter] = value
                    counts.up += (value == 1) - (before == 1)
                    counts.down += (value == -1) - (before == -1)
                results.append(counts.tally(comment_id, value, changed=value != before))
            await _apply(conn, stored, votes, found)
        return results

    async def bump(self, thread_ids: list[int]) -> None:
        """Tell cached reads of these threads that vote counts changed (one statement)."""
        if not thread_ids:
            return
        marks, padded = in_list(thread_ids)
        async with self.db.transaction() as conn:
            await conn.execute(
                f"UPDATE threads SET votes_seq = votes_seq + 1 WHERE id IN ({marks})", *padded
            )

    async def mine(self, voter: str, comment_ids: list[int]) -> dict[int, int]:
        """This voter's votes on these comments (what the widget highlights)."""
        found: dict[int, int] = {}
        async with self.db.read() as conn:
            for start in range(0, len(comment_ids), 500):
                chunk = comment_ids[start : start + 500]
                marks, padded = in_list(chunk, first=2)
                rows = await conn.fetch(
                    f"SELECT comment_id, value FROM votes WHERE voter = $1 "
                    f"AND comment_id IN ({marks})",
                    voter,
                    *padded,
                )
                found.update((r["comment_id"], r["value"]) for r in rows)
        return found


@dataclass
class _Counts:
    """A locked comment's counts as read, and as the batch's ballots change them."""

    thread_id: int
    uri: str
    read_up: int
    read_down: int
    up: int = field(init=False)
    down: int = field(init=False)

    def __post_init__(self) -> None:
        self.up, self.down = self.read_up, self.read_down

    def tally(self, comment_id: int, mine: int, *, changed: bool) -> Tally:
        return Tally(comment_id, self.thread_id, self.uri, self.up, self.down, mine, changed)


def _in_list(values: list[Any], first: int = 1) -> tuple[str, list[Any]]:
    """Placeholders ``$first, …`` for ``IN (…)``, and the values padded to a power of two by
    repeating the last: batches of any size then share a few statement texts, which
    PostgreSQL's driver prepares once per connection instead of once per size."""
    size = 1 << max(0, len(values) - 1).bit_length()
    padded = values + values[-1:] * (size - len(values))
    return ", ".join(f"${i}" for i in range(first, first + size)), padded


async def _stored(conn: Connection, comment_ids: list[int], voters: list[str]) -> Votes:
    """The stored votes of these voters on these comments (read under the comments' locks)."""
    if not comment_ids:
        return {}
    on, ids = _in_list(comment_ids)
    by, names = _in_list(voters, len(ids) + 1)
    rows = await conn.fetch(
        f"SELECT comment_id, voter, value FROM votes WHERE comment_id IN ({on}) "
        f"AND voter IN ({by})",
        *ids,
        *names,
    )
    return {(r["comment_id"], r["voter"]): r["value"] for r in rows}


async def _apply(conn: Connection, stored: Votes, votes: Votes, found: dict[int, _Counts]) -> None:
    """The batch's net change: vote rows set or removed, and each comment's counts moved."""
    changed = [(key, value) for key, value in votes.items() if stored.get(key, 0) != value]
    when = now()
    cast = [(cid, voter, value, when) for (cid, voter), value in changed if value != 0]
    withdrawn = [(cid, voter) for (cid, voter), value in changed if value == 0]
    if cast:
        await conn.executemany(
            "INSERT INTO votes (comment_id, voter, value, created) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (comment_id, voter) DO UPDATE SET value = excluded.value, "
            "created = excluded.created",
            cast,
        )
    if withdrawn:
        await conn.executemany("DELETE FROM votes WHERE comment_id = $1 AND voter = $2", withdrawn)
    moved = [
        (cid, c.up - c.read_up, c.down - c.read_down)
        for cid, c in found.items()
        if (c.up, c.down) != (c.read_up, c.read_down)
    ]
    if moved:
        await conn.executemany(
            "UPDATE comments SET up = up + $2, down = down + $3 WHERE id = $1", moved
        )
