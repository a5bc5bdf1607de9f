"""Arranging a flat thread into the nested, numbered view (pure logic, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from db.comments import FULL, PLACEHOLDER
from db.models import Comment
from server.discussion.tree import Node, build

START = datetime(2026, 11, 29, tzinfo=UTC)


def comment(cid: int, parent: int | None = None) -> Comment:
    return Comment(
        id=cid,
        thread_id=1,
        parent_id=parent,
        author=f"a{cid}",
        email="",
        website=None,
        text="",
        html="",
        status="approved",
        reason=None,
        address=None,
        staff_id=None,
        created=START + timedelta(minutes=cid),
        edited=None,
    )


def shape(nodes: list[Node]) -> list[tuple[int, int, int | None, list[object]]]:
    return [(n.comment.id, n.depth, n.number, shape(n.children)) for n in nodes]


def test_flat_view_when_max_depth_is_one() -> None:
    """With a depth limit of 1 every reply is top level, numbered, and says whom it answers."""
    roots = build([comment(1), comment(2, 1), comment(3, 2)], {}, 1)
    assert shape(roots) == [(1, 1, 1, []), (2, 1, 2, []), (3, 1, 3, [])]
    assert roots[1].answers is not None and roots[1].answers.id == 1
    assert roots[0].answers is None


def test_placeholders_are_not_numbered() -> None:
    """A deleted comment kept for its replies takes no number; the next one is #1."""
    states = {1: PLACEHOLDER, 2: FULL, 3: FULL}
    roots = build([comment(1), comment(2, 1), comment(3)], states, 5)
    assert shape(roots) == [(1, 1, None, [(2, 2, None, [])]), (3, 1, 1, [])]


def test_a_reply_loop_from_bad_data_does_not_hang() -> None:
    """Comments whose parents form a loop are still all shown, once each."""
    roots = build([comment(1, 2), comment(2, 1), comment(3, 3)], {}, 5)
    seen = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        seen.append(node.comment.id)
        stack.extend(node.children)
    assert sorted(seen) == [1, 2, 3]


def test_a_very_long_reply_chain_does_not_overflow() -> None:
    """Five thousand replies, each to the one before, nest to the limit and then line up."""
    chain = [comment(1)] + [comment(i, i - 1) for i in range(2, 5001)]
    roots = build(list(reversed(chain)), {}, 5)
    assert len(roots) == 1
    level = roots[0]
    for _ in range(3):
        level = level.children[0]
    assert level.depth == 4
    assert len(level.children) == 4996  # ids 5…5000
    assert all(child.depth == 5 for child in level.children)
