"""Votes: one row per voter and comment, and the comment's counts kept beside it.

A vote and its change of the comment's ``up``/``down`` are one transaction, so counts never
drift from the rows. The thread's ``votes_seq`` (part of its version, which keys cached
reads) is bumped apart, by :meth:`VoteStore.bump`, for many votes at once: a busy thread's
votes then never queue on the thread's row, only on their own comment's.
"""

from __future__ import annotations

from dataclasses import dataclass

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


class VoteStore:
    """Votes arriving together share one transaction (:mod:`db.groupcommit`): one flush for
    many votes. Within a batch the votes run in comment-id order, so two processes' batches
    take comment row locks in the same order and never deadlock."""

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
        results: list[Tally | Exception | None] = [None] * len(batch)
        async with self.db.transaction() as conn:
            for i in sorted(range(len(batch)), key=lambda i: batch[i][0]):
                try:
                    results[i] = await self._one(conn, *batch[i])
                except NotVotable as exc:
                    results[i] = exc
        return [r for r in results if r is not None]

    @staticmethod
    async def _one(conn: Connection, comment_id: int, voter: str, value: int) -> Tally:
        # The no-op update takes the comment's row lock (both engines), so one voter's
        # concurrent votes on one comment queue and the counts stay exact.
        found = await conn.fetchrow(
            "UPDATE comments SET up = up WHERE id = $1 AND status = 'approved' "
            "RETURNING thread_id, (SELECT uri FROM threads t WHERE t.id = thread_id) AS uri",
            comment_id,
        )
        if found is None:
            raise NotVotable(str(comment_id))
        thread_id, uri = found["thread_id"], found["uri"]
        before = await conn.fetchval(
            "SELECT value FROM votes WHERE comment_id = $1 AND voter = $2", comment_id, voter
        )
        before = int(before or 0)
        if value == before:
            row = await conn.fetchrow("SELECT up, down FROM comments WHERE id = $1", comment_id)
            assert row is not None
            return Tally(comment_id, thread_id, uri, row["up"], row["down"], value, False)
        if value == 0:
            await conn.execute(
                "DELETE FROM votes WHERE comment_id = $1 AND voter = $2", comment_id, voter
            )
        else:
            await conn.execute(
                "INSERT INTO votes (comment_id, voter, value, created) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (comment_id, voter) DO UPDATE SET value = excluded.value, "
                "created = excluded.created",
                comment_id,
                voter,
                value,
                now(),
            )
        row = await conn.fetchrow(
            "UPDATE comments SET up = up + $2, down = down + $3 WHERE id = $1 RETURNING up, down",
            comment_id,
            (value == 1) - (before == 1),
            (value == -1) - (before == -1),
        )
        assert row is not None
        return Tally(comment_id, thread_id, uri, row["up"], row["down"], value, True)

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
