"""Posting and moderating comments: the policy between the HTTP edges and the stores.

Both the HTML form and the JSON API come through here, so the rules (moderation policy, spam
checks, thread creation, sanitising) cannot differ between them. Listeners run after the
commit: the live hub publishes events, the moderation channel and mail learn of held comments.
A listener that fails is logged and never undoes or fails the accepted comment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from db import comments as store
from db.comments import (
    CommentStore,
    DuplicateSubmission,
    InvalidParent,
    NewComment,
    StaleVersion,
    Submission,
    ThreadClosed,
    UnknownThread,
)
from db.models import Comment, Event, StaffMember, Status, now
from db.privacy import Erasure, PrivacyStore
from db.screening import Question, Screening, screen
from server.discussion.bans import BANNED, ban_keys
from server.discussion.errors import (
    Changed,
    Closed,
    InvalidInput,
    Limited,
    NotAllowed,
    UnknownComment,
)
from server.discussion.lookalikes import impersonates
from server.discussion.markup import count_links, render_comment
from server.discussion.moderation import Action
from server.discussion.ratelimit import PostLimiter
from server.discussion.validation import CommentInput
from server.i18n import N_
from server.settings import Settings

log = logging.getLogger("kibitz.discussion")

EventListener = Callable[[list[Event]], Awaitable[None]]
CommentListener = Callable[[Comment], Awaitable[None]]
ModeratedListener = Callable[[Comment, Comment, str], Awaitable[None]]
# (thread uri, comment ids whose vote counts changed); not stored, like presence
VotesListener = Callable[[str, list[int]], Awaitable[None]]

# Reasons a comment is held, stored with it and shown to moderators.
HELD_POLICY_ALL = N_("policy: every comment is held")
HELD_FIRST_TIME = N_("first-time commenter")
HELD_LINKS = N_("too many links")
HELD_IMPERSONATION = N_("uses a staff member's name or e-mail")
HELD_HONEYPOT = N_("honeypot field filled in")
HELD_TOO_FAST = N_("form sent faster than a person types")
HELD_NO_FORM_TOKEN = N_("form sent without the page's form token")
HELD_FORM_EXPIRED = N_("form sent from a page rendered more than a day ago")
HELD_FORM_FOR_ANOTHER_POST = N_("form token of another post")
HELD_DUPLICATE = N_("same text posted on this thread moments ago")


def renders_quickly(text: str) -> bool:
    """Whether rendering ``text`` costs less than handing it to a thread and back.

    A short comment renders in about 50 µs; the cost grows with length and with nesting
    (quotes and tags), and crafted texts of 2,000 characters take milliseconds, which must
    not stall every other request. At most 600 characters with at most 16 angle brackets
    stay under 0.3 ms in the worst shape measured (bare links).
    """
    return len(text) <= 600 and text.count("<") + text.count(">") <= 16


# What an erased commenter's comments keep as their name (only staff ever see it).
ERASED_NAME = "[erased]"


class AlreadySubmitted(Exception):
    """An earlier submission under the same key committed; nothing new was stored.

    Not an error for the client: the edge answers what it answered the first time.
    """

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass
class Listeners:
    events: list[EventListener] = field(default_factory=list)
    held: list[CommentListener] = field(default_factory=list)
    moderated: list[ModeratedListener] = field(default_factory=list)
    votes: list[VotesListener] = field(default_factory=list)


async def notify(listeners: Sequence[Callable[..., Awaitable[None]]], *args: object) -> None:
    for listener in listeners:
        try:
            await listener(*args)
        except Exception:  # a listener must never fail a committed write
            log.exception("after-commit listener %r failed", listener)


class Discussion:
    def __init__(
        self,
        settings: Settings,
        comments: CommentStore,
        limiter: PostLimiter,
    ) -> None:
        self.settings = settings
        self.comments = comments
        self.limiter = limiter
        self.listeners = Listeners()

    async def _limit(self, address: str | None) -> None:
        if address is None or not self.limiter.items:
            return
        try:
            await self.limiter.hit(address)
        except Limited:
            raise
        except Exception:
            # The limit store (Redis) is down: accepting comments must not depend on it.
            log.warning("rate limit store unavailable; comment from %s not limited", address)

    async def _screen(
        self,
        data: CommentInput,
        *,
        uri: str | None = None,
        address: str | None = None,
        sso_sub: str | None = None,
        bans: bool = True,
    ) -> Screening:
        """Everything the policy asks of the database about an anonymous comment, in one read:
        a duplicate on ``uri`` (when given), a ban (when ``bans``), the staff's names and, under
        first-time moderation, an earlier approved comment."""
        window = timedelta(seconds=self.settings.duplicate_window)
        first_time = self.settings.moderation == "first-time"
        at = now()
        question = Question(
            uri=uri or "",
            text=data.text,
            duplicate_since=at - window if uri is not None and window else None,
            ban=(
                ban_keys(author=data.author, email=data.email, address=address, sub=sso_sub)
                if bans
                else None
            ),
            known_email=data.email if first_time and sso_sub is None else None,
            known_sub=sso_sub if first_time else None,
        )
        return await screen(self.comments.db, question, at)

    def _decide(
        self, data: CommentInput, html: str, screening: Screening, held: str | None
    ) -> tuple[Status, str | None]:
        """The status of an anonymous comment and why it is held, if it is."""
        if screening.banned:
            # Kept, as spam, for staff to see; the commenter is told it awaits moderation.
            return Status.SPAM, BANNED
        if held:
            return Status.PENDING, held
        if screening.duplicate:
            return Status.PENDING, HELD_DUPLICATE
        if impersonates(data.author, data.email, screening.staff):
            return Status.PENDING, HELD_IMPERSONATION
        policy = self.settings.moderation
        if policy == "none":
            return Status.APPROVED, None
        if policy == "all":
            return Status.PENDING, HELD_POLICY_ALL
        if count_links(html) >= self.settings.max_links:
            return Status.PENDING, HELD_LINKS
        # A signed-in (SSO) reader is known by the site's user id, not by an e-mail address.
        if not screening.known:
            return Status.PENDING, HELD_FIRST_TIME
        return Status.APPROVED, None

    async def submit(
        self,
        uri: str,
        data: CommentInput,
        *,
        address: str | None,
        staff: StaffMember | None = None,
        may_create_thread: bool = False,
        held: str | None = None,
        title: str | None = None,
        sso_sub: str | None = None,
        submission: Submission | None = None,
    ) -> Comment:
        """Validate against the thread, decide the status, commit, then tell listeners.

        ``held`` is a reason found by the edge (honeypot, fill time): such a comment is kept
        as pending with that reason, never thrown away. ``sso_sub`` is the user id of a reader
        the embedding site signed in (their name and e-mail in ``data`` came from its token).
        With a ``submission`` the comment is stored only if no earlier submission holds its
        key (else :class:`AlreadySubmitted`).
        """
        screening = None
        if staff is None:
            await self._limit(address)
            screening = await self._screen(data, uri=uri, address=address, sso_sub=sso_sub)
        # Sanitising is CPU work that grows with length and nesting: off the event loop
        # unless the text is short and plain.
        if renders_quickly(data.text):
            html = render_comment(data.text)
        else:
            html = await asyncio.to_thread(render_comment, data.text)
        status: Status
        reason: str | None
        if screening is None:
            status, reason = Status.APPROVED, None  # staff publish at once
        else:
            status, reason = self._decide(data, html, screening, held)
        new = NewComment(
            author=staff.name if staff else data.author,
            email=(staff.email or data.email) if staff else data.email,
            website=data.website,
            text=data.text,
            html=html,
            status=status,
            parent_id=data.parent,
            reason=reason,
            address=address,
            staff_id=staff.id if staff else None,
            sso_sub=None if staff else sso_sub,
        )
        try:
            comment, events = await self.comments.add(
                uri,
                new,
                create_thread=may_create_thread or staff is not None,
                title=title,
                submission=submission,
            )
        except DuplicateSubmission as exc:
            raise AlreadySubmitted(exc.key) from None
        except UnknownThread:
            raise NotAllowed(
                N_(
                    "This page may not start a discussion here: its site is not "
                    "allowed to embed comments (KIBITZ_ALLOWED_ORIGINS)."
                )
            ) from None
        except ThreadClosed:
            raise Closed() from None
        except InvalidParent:
            raise InvalidInput(
                fields={"parent": N_("The comment you reply to does not exist or is not visible.")}
            ) from None
        await notify(self.listeners.events, events)
        if comment.status == Status.PENDING:
            await notify(self.listeners.held, comment)
        return comment

    async def moderate(
        self, comment_id: int, action: Action, by: StaffMember, version: int | None = None
    ) -> Comment:
        """Approve, mark as spam, delete or restore; readers see the change through the events.

        With ``version`` (what the moderator saw), a comment edited since is not touched:
        :class:`Changed` (409), and the moderator's queue shows the new text.
        """
        try:
            old, new, events = await self.comments.change(
                comment_id, status=action.target, version=version
            )
        except store.UnknownComment:
            raise UnknownComment(comment_id) from None
        except StaleVersion:
            raise Changed() from None
        await notify(self.listeners.events, events)
        await notify(self.listeners.moderated, old, new, by.name)
        return new

    async def edit(self, comment_id: int, text: str, by: StaffMember | None = None) -> Comment:
        """Change a comment's text. A commenter's edit goes through the same decision as a
        new comment: where that would be held, the edited comment is held again (readers
        lose it until staff approve the new text). Every open queue gets the new version of
        a held comment."""
        html = await asyncio.to_thread(render_comment, text)
        current = await self.comments.get(comment_id)
        if current is None:
            raise UnknownComment(comment_id)
        status: Status | None = None
        reason: str | None = None
        if by is None and current.status == Status.APPROVED:
            data = CommentInput(
                author=current.author,
                email=current.email,
                website=current.website,
                text=text,
                parent=current.parent_id,
            )
            # As for a new comment, but a ban or a duplicate does not hold an edit.
            screening = await self._screen(data, bans=False)
            decided, why = self._decide(data, html, screening, None)
            if decided == Status.PENDING:
                status, reason = Status.PENDING, why
        try:
            _, new, events = await self.comments.change(
                comment_id,
                text=text,
                html=html,
                edited=now(),
                status=status,
                reason=reason,
                version=current.version,  # nobody changed it between our decision and now
            )
        except store.UnknownComment:
            raise UnknownComment(comment_id) from None
        except StaleVersion:
            raise Changed(N_("This comment changed meanwhile. Reload it, then edit.")) from None
        await notify(self.listeners.events, events)
        if new.status == Status.PENDING:
            await notify(self.listeners.held, new)
        return new

    async def remove(self, comment_id: int) -> Comment:
        """The commenter withdraws their comment; open queues drop it if it was held."""
        try:
            old, new, events = await self.comments.change(comment_id, status=Status.DELETED)
        except store.UnknownComment:
            raise UnknownComment(comment_id) from None
        await notify(self.listeners.events, events)
        if old.status == Status.PENDING:  # the audit log and the queues learn who withdrew it
            await notify(self.listeners.moderated, old, new, f"{old.author} (author)")
        return new

    async def erase_commenter(self, email: str) -> Erasure:
        """Erase everything a commenter wrote with this address; readers get the events."""
        erasure = await PrivacyStore(self.comments.db).erase(email, ERASED_NAME)
        await notify(self.listeners.events, erasure.events)
        return erasure
