"""What a request handler may use: one typed object per process, built in ``lifespan``.

Every service is a field, present in every process (mail is ``None`` only when
``KIBITZ_SMTP_URL`` is unset, which is a setting, not a missing plugin). Handlers reach it
through :func:`state_of`, the one way in. The services are built and started by
:func:`server.app.open_state`; this module only names them, so importing it costs nothing
and creates no import cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from starlette.requests import HTTPConnection

from server.http.replay import Replays
from server.lru import LRU

if TYPE_CHECKING:
    from db.audit import AuditLog
    from db.bans import BanStore
    from db.comments import CommentStore
    from db.database import Database
    from db.models import Thread
    from db.moderation import ModerationStore
    from db.posts import PostStore
    from db.staff import StaffStore
    from realtime.publisher import Live
    from server.auth.credentials import EditTokens
    from server.auth.sessions import Sessions
    from server.discussion.actions import Discussion
    from server.discussion.cache import (
        CountCache,
        CountQuestions,
        RenderedPage,
        RenderedThread,
        ThreadCache,
    )
    from server.discussion.paging import Pager
    from server.discussion.ratelimit import PostLimiter
    from server.discussion.threads import Threads
    from server.discussion.votes import Votes
    from server.http.widget import Bundle
    from server.mail.notifications import Mail
    from server.settings import Settings
    from server.templates import Templates
    from server.webhooks.service import Webhooks

HealthCheck = Callable[[], Awaitable[object]]


# (thread id, last_seq, votes_seq, closed flag, this process's unflushed votes)
ThreadVersion = tuple[int, int, int, "bool | None", int]


@dataclass
class State:
    """Everything a request handler may use; built once per process."""

    settings: Settings
    db: Database
    comments: CommentStore
    posts: PostStore
    staff: StaffStore
    moderation: ModerationStore
    audit: AuditLog
    bans: BanStore
    discussion: Discussion
    templates: Templates
    edit_tokens: EditTokens
    sessions: Sessions
    login_per_account: PostLimiter
    login_per_address: PostLimiter
    privacy_per_address: PostLimiter
    privacy_per_email: PostLimiter
    cache: ThreadCache
    counts: CountCache
    count_questions: CountQuestions
    # Rendered comment lists, keyed by everything the HTML depends on: a visible state of the
    # thread (its version), the post's uri in the reply links, language, depth limit and the
    # view. Nothing per request or per reader is in one: form tokens, CSRF and staff
    # controls are rendered around it, every time.
    fragments: LRU[Hashable, RenderedThread]
    pages: LRU[Hashable, RenderedPage]  # whole post pages without a session, likewise keyed
    page_bodies: LRU[Hashable, bytes]  # JSON pages of big threads (``?limit=…``)
    live: Live
    bundle: Bundle
    mail: Mail | None
    webhooks: Webhooks
    threads: Threads
    votes: Votes
    pager: Pager
    # Answers the HTTP protocol may give again (server/http/replay.py).
    replays: Replays = field(default_factory=Replays)
    background: list[asyncio.Task[None]] = field(default_factory=list)
    health: dict[str, HealthCheck] = field(default_factory=dict)

    def change_mark(self) -> Hashable | None:
        """Moves with every commit and every vote this process holds back; None where the
        storage has no cheap mark (kept answers are then checked each time)."""
        mark = self.db.change_mark()
        return None if mark is None else (mark, self.votes.changes)

    def thread_version(self, thread: Thread) -> ThreadVersion:
        """Everything a reader's view of ``thread`` depends on besides what was asked: the
        thread, its visible state (``last_seq``: comments, pins, closing), its votes
        (``votes_seq`` and the votes this process holds back) and the staff's closing
        decision. Cached pages and answers given again are keyed by it."""
        return self.stored_version(
            thread.id, (thread.last_seq, thread.votes_seq, thread.closed_flag)
        )

    def stored_version(self, thread_id: int, stored: tuple[int, int, bool | None]) -> ThreadVersion:
        """:meth:`thread_version` from the thread's ``(last_seq, votes_seq, closed flag)`` as
        read with something else (a post page reads them with its post)."""
        return (thread_id, *stored, self.votes.local_version(thread_id))

    @property
    def live_url(self) -> str:
        """Where browsers open the live channel (``/api/config``, the admin's CSP)."""
        return self.live.url


def state_of(conn: HTTPConnection) -> State:
    """The process's :class:`State`, from any request or websocket."""
    return cast("State", conn.app.state.kibitz)
