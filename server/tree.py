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
    number: int | None = None  # top-level comments are numbered 1, 2, 3…
    children: list[Node] = field(default_factory=list)

    @property
    def placeholder(self) -> bool:
        return self.state != FULL


def build(comments: list[Comment], states: dict[int, str], max_depth: int) -> list[Node]:
    """Nest replies under their parents, oldest first, no deeper than ``max_depth``.

    A reply below the limit is shown beside its parent at the deepest level, so it is never
    hidden. A reply whose parent is not visible is shown at the top level.
    """
    nodes = {c.id: Node(c, states.get(c.id, FULL), 1) for c in comments}
    roots: list[Node] = []
    display_parent: dict[int, Node | None] = {}

    def attach(node: Node) -> None:
        parent = nodes.get(node.comment.parent_id) if node.comment.parent_id else None
        if parent is None or parent is node:
            display_parent[node.comment.id] = None
            roots.append(node)
            return
        if parent.comment.id not in display_parent:
            attach(parent)
        while parent is not None and parent.depth >= max_depth:
            parent = display_parent[parent.comment.id]
        if parent is None:
            display_parent[node.comment.id] = None
            roots.append(node)
            return
        node.depth = parent.depth + 1
        display_parent[node.comment.id] = parent
        parent.children.append(node)

    for comment in comments:
        if comment.id not in display_parent:
            attach(nodes[comment.id])
    roots.sort(key=lambda n: (n.comment.created, n.comment.id))
    for number, root in enumerate(roots, start=1):
        root.number = number
    stack = list(roots)
    while stack:
        node = stack.pop()
        node.children.sort(key=lambda n: (n.comment.created, n.comment.id))
        stack.extend(node.children)
    return roots
