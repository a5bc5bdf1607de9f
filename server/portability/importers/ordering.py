"""Parents before replies, whatever order the export lists them in.

Exports list replies before their parents (WordPress sorts by id, Disqus by thread, Isso by
nothing in particular). The writer only attaches a reply to a parent written before it (which
also makes cycles impossible), so sources pass their comments through :class:`ParentsFirst`:
a reply waits until its parent has gone by. What still waits at the end is released as it is,
and the writer then looks for the parent among earlier imports or puts the reply at the top
level, reported.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from db.imports import CommentIn
from server.portability.importers.report import Report


class ParentsFirst:
    def __init__(self, report: Report, known: Collection[str] | None = None) -> None:
        """``known``: every source id that will come by, when the source knows it up front;
        a reply to anything else is released at once instead of waiting for the end."""
        self.report = report
        self.known = known
        self.seen: set[str] = set()
        self.dropped: dict[str, str] = {}
        self.waiting: dict[str, list[CommentIn]] = {}

    def drop(self, source: str, why: str) -> list[CommentIn]:
        """A comment that will not be imported; replies to it go to the top level."""
        self.dropped[source] = why
        return [self._reroot(c, why) for c in self.waiting.pop(source, [])]

    def push(self, comment: CommentIn) -> list[CommentIn]:
        parent = comment.parent_source
        if (
            parent is None
            or parent in self.seen
            or (self.known is not None and parent not in self.known)
        ):
            return self._emit(comment)
        if parent in self.dropped:
            return self._emit(self._reroot(comment, self.dropped[parent]))
        self.waiting.setdefault(parent, []).append(comment)
        return []

    def finish(self) -> list[CommentIn]:
        """Release replies whose parent never came (missing, or a cycle)."""
        left = [c for group in self.waiting.values() for c in group]
        self.waiting.clear()
        out: list[CommentIn] = []
        for comment in left:
            if comment.source not in self.seen:
                out += self._emit(comment)
        return out

    def _reroot(self, comment: CommentIn, why: str) -> CommentIn:
        self.report.reroot(comment.source, f"parent skipped: {why}")
        return replace(comment, parent_source=None)

    def _emit(self, comment: CommentIn) -> list[CommentIn]:
        out = [comment]
        self.seen.add(comment.source)
        ready = self.waiting.pop(comment.source, [])
        while ready:
            child = ready.pop(0)
            out.append(child)
            self.seen.add(child.source)
            ready += self.waiting.pop(child.source, [])
        return out
