"""The vote store on both backends: votes arriving together, and two processes at once."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from db.comments import CommentStore, NewComment
from db.database import Database, connect
from db.migrate import migrate
from db.votes import NotVotable, Tally, VoteStore


def comment(status: str = "approved") -> NewComment:
    return NewComment("Ada", "ada@example.org", None, "Hello", "<p>Hello</p>", status)


async def stored(db: Database) -> dict[int, tuple[int, int, int, int]]:
    """Per comment: the counts on its row, and the counts of its vote rows."""
    async with db.read() as conn:
        rows = await conn.fetch(
            "SELECT c.id, c.up, c.down, "
            "(SELECT COUNT(*) FROM votes v WHERE v.comment_id = c.id AND v.value = 1) AS ups, "
            "(SELECT COUNT(*) FROM votes v WHERE v.comment_id = c.id AND v.value = -1) AS downs "
            "FROM comments c"
        )
    return {r["id"]: (r["up"], r["down"], r["ups"], r["downs"]) for r in rows}


async def test_votes_arriving_together_count_as_cast_one_after_another(db: Database) -> None:
    """One batch: each vote's answer is what it would be alone, in arrival order; a vote on a
    hidden or unknown comment fails alone; only the net change is stored."""
    comments = CommentStore(db)
    one, two = await comments.add_many("/t", [comment(), comment()])
    hidden = (await comments.add("/t", comment("pending"), create_thread=False))[0].id
    store = VoteStore(db)
    ballots = [
        (one, "a", 1),
        (one, "a", 1),  # the same again: unchanged
        (one, "b", -1),
        (hidden, "a", 1),
        (one, "a", -1),  # changed
        (two, "a", 1),
        (2**40, "a", 1),  # no such comment
        (one, "a", 0),  # withdrawn
        (two, "b", -1),
        (two, "b", 1),
    ]
    # Submitted in one go: the first write takes them all (tests/db/test_groupcommit.py).
    answers = await asyncio.gather(*(store.vote(*b) for b in ballots), return_exceptions=True)
    shown = [
        (a.comment_id, a.up, a.down, a.mine, a.changed) if isinstance(a, Tally) else type(a)
        for a in answers
    ]
    assert shown == [
        (one, 1, 0, 1, True),
        (one, 1, 0, 1, False),
        (one, 1, 1, -1, True),
        NotVotable,
        (one, 0, 2, -1, True),
        (two, 1, 0, 1, True),
        NotVotable,
        (one, 0, 1, 0, True),
        (two, 1, 1, -1, True),
        (two, 2, 0, 1, True),
    ]
    counts = await stored(db)
    assert counts[one] == (0, 1, 0, 1) and counts[two] == (2, 0, 2, 0)
    assert counts[hidden] == (0, 0, 0, 0)
    assert await store.mine("a", [one, two, hidden]) == {two: 1}
    assert await store.mine("b", [one, two]) == {one: -1, two: 1}


@pytest.mark.postgres
async def test_two_processes_voting_on_the_same_comments_keep_counts_exact(pg_url: str) -> None:
    """Two stores on their own pools (two processes), batches locking the same comments from
    both sides: no deadlock, no vote lost, counts equal the stored votes."""
    first, second = await connect(pg_url), await connect(pg_url)
    try:
        await migrate(first)
        ids = await CommentStore(first).add_many("/t", [comment() for _ in range(12)])
        rng = random.Random(17)
        ballots = [
            (rng.choice(ids), f"v{rng.randrange(30)}", rng.choice((1, -1, 0))) for _ in range(600)
        ]
        stores = [VoteStore(first), VoteStore(second)]

        async def cast(store: VoteStore, part: list[tuple[int, str, int]]) -> list[Tally]:
            answers = []
            for start in range(0, len(part), 40):  # batches of 40, one after another
                answers += await asyncio.gather(*(store.vote(*b) for b in part[start : start + 40]))
            return answers

        answers = await asyncio.gather(
            cast(stores[0], ballots[0::2]), cast(stores[1], list(reversed(ballots[1::2])))
        )
        assert all(isinstance(a, Tally) for a in itertools.chain(*answers))
        counts = await stored(first)
        assert all(c[:2] == c[2:] for c in counts.values()), counts
        assert sum(c[0] + c[1] for c in counts.values()) > 0
    finally:
        await first.close()
        await second.close()
