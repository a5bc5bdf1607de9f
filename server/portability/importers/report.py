"""What an import did, counted as it goes and printed at the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from db.imports import BatchResult
from db.models import Status

SHOWN = 10  # re-rooted replies listed by source id; the rest are only counted


class ImportRefused(Exception):
    """The input cannot be imported at all (not well-formed, not that format, unsafe)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


@dataclass
class Report:
    """Filled by the source (skips, flags) and by the writer (what was written)."""

    fmt: str
    file: str
    posts_created: int = 0
    posts_existing: int = 0
    threads: set[int] = field(default_factory=set)  # thread ids that received comments
    threads_created: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    replies: int = 0
    existing: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    flagged: Counter[str] = field(default_factory=Counter)
    rerooted: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    addresses_dropped: int = 0
    not_posts: Counter[str] = field(default_factory=Counter)  # source items that are no post

    @property
    def imported(self) -> int:
        return sum(self.statuses.values())

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] += count

    def flag(self, what: str) -> None:
        self.flagged[what] += 1

    def reroot(self, source: str, why: str) -> None:
        self.rerooted.append((source, why))

    def add(self, batch: BatchResult, thread_of: dict[str, int]) -> None:
        self.posts_created += batch.posts_created
        self.posts_existing += batch.posts_existing
        self.threads_created += batch.threads_created
        self.existing += batch.existing
        if batch.duplicates:
            self.skip("duplicate id in the file", batch.duplicates)
        self.rerooted.extend(batch.rerooted)
        for old, new in batch.renamed_slugs:
            self.notes.append(f"slug {old!r} was taken; the post is at /posts/{new}")
        for alias in batch.aliases_shadowed:
            self.notes.append(
                f"old address {alias} already has a thread of its own; it was not made an alias"
            )
        if batch.pins_dropped:
            self.flagged["pin on a reply dropped"] += batch.pins_dropped
        for name in sorted(batch.unknown_staff):
            self.notes.append(f"no staff account {name!r}: its comments are kept as a commenter's")
        for comment, parent in batch.inserted:
            self.statuses[comment.status] += 1
            self.replies += parent is not None
            self.threads.add(thread_of[comment.thread_key])

    def lines(self) -> list[str]:
        statuses = ", ".join(
            f"{s} {self.statuses[s]}"
            for s in (Status.APPROVED, Status.PENDING, Status.SPAM, Status.DELETED)
        )
        not_posts = ", ".join(f"{why} {n}" for why, n in sorted(self.not_posts.items()))
        out = [
            f"imported {self.file} ({self.fmt})",
            f"  posts: {self.posts_created} created, {self.posts_existing} already there",
            *([f"  items that are not public posts: {not_posts}"] if not_posts else []),
            f"  threads: {len(self.threads)} with new comments "
            f"({self.threads_created} new threads)",
            f"  comments: {self.imported} new ({statuses}), {self.existing} already there",
            f"  replies: {self.replies}",
        ]
        if self.rerooted:
            shown = ", ".join(f"{s} ({why})" for s, why in self.rerooted[:SHOWN])
            more = f" and {len(self.rerooted) - SHOWN} more" if len(self.rerooted) > SHOWN else ""
            out.append(f"  moved to the top level: {len(self.rerooted)}: {shown}{more}")
        skipped = ", ".join(f"{why} {n}" for why, n in sorted(self.skipped.items()))
        out.append(f"  skipped: {skipped or 'none'}")
        for what, n in sorted(self.flagged.items()):
            out.append(f"  flagged: {what}: {n}")
        if self.addresses_dropped:
            out.append(
                f"  client addresses not stored (older than the retention): "
                f"{self.addresses_dropped}"
            )
        out += [f"  note: {note}" for note in self.notes]
        return out
