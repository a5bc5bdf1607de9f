"""Arranging a thread's flat comment list into the nested, numbered view a page shows."""

from __future__ import annotations

from dataclasses import dataclass, field

from db.comments import FULL
from db.models import Comment


@dataclass
class Node:
    comment: Comment
    state: str
    depth: int
    number: int | None = None  # shown top-level comments are numbered 1, 2, 3…
    # Set when the depth limit shows this reply beside its parent instead of under it, so
    # the page can still say whom it answers.
    answers: Comment | None = None
    children: list[Node] = field(default_factory=list)

    @property
    def placeholder(self) -> bool:
        return self.state != FULL


def _order(node: Node) -> tuple[object, int]:
    return (node.comment.created, node.comment.id)


def build(
    comments: list[Comment],
    states: dict[int, str],
    max_depth: int,
    *,
    numbers: dict[int, int] | None = None,
) -> list[Node]:
    """Nest replies under their parents, oldest first, no deeper than ``max_depth``.

    A reply below the limit is shown beside its parent at the deepest level, so it is never
    hidden. A reply whose parent is not visible (or, after a bad import, a reply chain that
    loops) is shown at the top level. Iterative, so a long reply chain cannot overflow the
    stack.
    """
    nodes = {c.id: Node(c, states.get(c.id, FULL), 1) for c in comments}
    placed: dict[int, Node | None] = {}  # comment id → the node it is displayed under
    roots: list[Node] = []

    def place(node: Node, under: Node | None) -> None:
        while under is not None and under.depth >= max_depth:
            under = placed[under.comment.id]
        placed[node.comment.id] = under
        if under is None:
            node.depth = 1
            roots.append(node)
        else:
            node.depth = under.depth + 1
            under.children.append(node)
        parent_id = node.comment.parent_id
        real_parent = nodes.get(parent_id) if parent_id is not None else None
        if real_parent is not None and under is not real_parent and not real_parent.placeholder:
            node.answers = real_parent.comment

    for start in nodes.values():
        # Walk up to the first ancestor already placed (or the top), then place downwards.
        chain: list[Node] = []
        seen: set[int] = set()
        current: Node | None = start
        while current is not None and current.comment.id not in placed:
            if current.comment.id in seen:  # a loop: break it at the top level
                break
            seen.add(current.comment.id)
            chain.append(current)
            parent_id = current.comment.parent_id
            current = nodes.get(parent_id) if parent_id is not None else None
        for node in reversed(chain):
            parent_id = node.comment.parent_id
            parent = nodes.get(parent_id) if parent_id is not None else None
            place(node, parent if parent is not None and parent.comment.id in placed else None)

    if numbers is not None:
        # A page of a sorted thread: roots keep the order they came in (pinned first, then
        # the reader's order), and each keeps its number in the whole thread.
        position = {c.id: i for i, c in enumerate(comments)}
        roots.sort(key=lambda n: position[n.comment.id])
        for root in roots:
            root.number = None if root.placeholder else numbers.get(root.comment.id)
    else:
        roots.sort(key=_order)
        number = 0
        for root in roots:
            if not root.placeholder:
                number += 1
                root.number = number
    stack = list(roots)
    while stack:
        node = stack.pop()
        node.children.sort(key=_order)
        stack.extend(node.children)
    return roots
