"""E-mail notifications: what goes to whom, decided after commit and queued, never sent here.

- Staff with an e-mail address get one mail per held comment, with signed one-click links to
  approve it or mark it as spam (``server.mail.links``; the pages are ``server.mail.pages``).
- A commenter who ticked "notify me of replies" gets a confirmation mail once their comment
  is visible (double opt-in; a held or spam comment sends nothing, so the box cannot be used
  to mail strangers), then one mail per approved reply to it, each with an unsubscribe link.

Everything here only writes rows to the mail queue (``db.mail``); :mod:`server.mail.queue`
delivers them. :class:`MailPlugin` wires it into the app when ``KIBITZ_SMTP_URL`` is set;
without it nothing is installed and no mail is ever queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from email.utils import make_msgid, parseaddr
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from db.database import Database
from db.mail import MailStore, OutgoingMail
from db.models import Comment, Event, Status, now
from server.discussion.moderation import Action
from server.http.feeds import comment_link
from server.mail.links import LINK_DAYS, MailLinks
from server.mail.queue import MailSender
from server.mail.smtp import SmtpTransport
from server.mail.text import one_line, plain_text
from server.settings import Settings

if TYPE_CHECKING:
    from server.state import State

log = logging.getLogger("kibitz.mail")

VISIBLE = ("comment.created", "comment.approved")


class Notifications:
    """Turns discussion changes into queued mails."""

    def __init__(
        self,
        state: State,
        store: MailStore,
        links: MailLinks,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.state = state
        self.settings = state.settings
        self.store = store
        self.links = links
        self.wake = wake
        self.site = urlsplit(self.settings.public_url).hostname or "kibitz"
        # KIBITZ_MAIL_FROM may be "kibitz@example.org" or "Kibitz <kibitz@example.org>".
        self.sender_domain = parseaddr(self.settings.mail_from)[1].rpartition("@")[2] or self.site

    # -- composing ---------------------------------------------------------------------------

    def _render(self, name: str, **context: Any) -> tuple[str, str]:
        text = self.state.templates.render(f"mail/{name}.txt", site=self.site, **context)
        head, _, body = text.partition("\n\n")
        assert head.startswith("Subject: "), name
        return one_line(head.removeprefix("Subject: ")), body.strip() + "\n"

    def _compose(
        self,
        dedupe: str,
        recipient: str,
        template: str,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> OutgoingMail:
        subject, body = self._render(template, **context)
        # The Message-ID is fixed when queued, so a retried mail is recognisably the same.
        all_headers = {
            "Message-ID": make_msgid("kibitz", domain=self.sender_domain),
            **(headers or {}),
        }
        return OutgoingMail(dedupe, recipient, subject, body, all_headers)

    async def _queue(self, *mails: OutgoingMail) -> None:
        if await self.store.enqueue(*mails):
            self.wake()

    def _url(self, path: str, token: str) -> str:
        return f"{self.settings.public_url}{path}?t={quote(token)}"

    async def _where(self, comment: Comment) -> tuple[str, str, str]:
        uri, title = await self.store.thread_of(comment.thread_id)
        return uri, one_line(title or uri), comment_link(self.settings, uri, comment.id)

    # -- staff: held comments ----------------------------------------------------------------

    async def held(self, comment: Comment) -> None:
        members = [m for m in await self.state.staff.active() if m.email]
        if not members:
            return
        _, title, page_url = await self._where(comment)
        mails = []
        for member in members:
            assert member.email is not None
            nonce = self.links.new_nonce()
            mails.append(
                self._compose(
                    f"held:{comment.id}:{member.id}",
                    member.email,
                    "held",
                    comment=comment,
                    title=title,
                    page_url=page_url,
                    days=LINK_DAYS,
                    approve_url=self._url(
                        "/mail/moderate",
                        self.links.moderation_token(
                            comment.id, member.id, Action.APPROVE, nonce, version=comment.version
                        ),
                    ),
                    spam_url=self._url(
                        "/mail/moderate",
                        self.links.moderation_token(
                            comment.id, member.id, Action.SPAM, nonce, version=comment.version
                        ),
                    ),
                    admin_url=f"{self.settings.public_url}/admin",
                )
            )
        await self._queue(*mails)  # one transaction for every staff member's mail

    # -- commenters: reply notifications -----------------------------------------------------

    async def subscribe(self, comment: Comment) -> None:
        """Record the wish; confirm at once if the comment is visible, else on approval.

        Called after the comment is committed: a failure here is logged, never turned into
        an error for a commenter whose comment was saved.
        """
        try:
            await self.store.subscribe(comment.id, comment.email)
            # Read again: a moderator may have approved it since, and that approval's event
            # found no subscription yet.
            current = await self.state.comments.get(comment.id)
            if current is not None and current.status == Status.APPROVED:
                await self._confirm(current)
        except Exception:
            log.exception("could not record the reply subscription of comment %d", comment.id)

    async def events(self, events: list[Event]) -> None:
        visible = [e.comment_id for e in events if e.type in VISIBLE]
        if not visible:
            return
        comments = await self.state.comments.by_ids(visible)
        for comment in comments.values():
            if comment.status != Status.APPROVED:
                continue
            await self._confirm(comment)
            if comment.parent_id is not None:
                await self._reply(comment)

    async def _confirm(self, comment: Comment) -> None:
        subscription = await self.store.subscription_of(comment.id)
        if subscription is None or subscription.confirmed or subscription.unsubscribed:
            return
        _, title, page_url = await self._where(comment)
        await self._queue(
            self._compose(
                f"confirm:{subscription.id}",
                subscription.email,
                "confirm",
                author=one_line(comment.author),
                title=title,
                page_url=page_url,
                confirm_url=self._url("/mail/subscribe", self.links.confirm_token(subscription.id)),
            )
        )

    async def _reply(self, reply: Comment) -> None:
        assert reply.parent_id is not None
        subscription = await self.store.subscription_of(reply.parent_id)
        if subscription is None or not subscription.active:
            return
        if subscription.email.strip().lower() == reply.email.strip().lower():
            return  # nobody needs a mail about their own answer
        uri, title, reply_url = await self._where(reply)
        parent_url = comment_link(self.settings, uri, reply.parent_id)
        unsubscribe_url = self._url(
            "/mail/unsubscribe", self.links.unsubscribe_token(subscription.id)
        )
        await self._queue(
            self._compose(
                f"reply:{reply.id}:{subscription.id}",
                subscription.email,
                "reply",
                headers={
                    "List-Unsubscribe": f"<{unsubscribe_url}>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
                author=one_line(reply.author),
                title=title,
                page_url=parent_url,
                text=plain_text(reply.html),
                reply_url=reply_url,
                unsubscribe_url=unsubscribe_url,
            )
        )


class Mail:
    """Mail when ``KIBITZ_SMTP_URL`` is set: the queue, its sender task and the notifications.

    Without that setting :meth:`from_settings` gives ``None`` and nothing is ever queued.
    """

    def __init__(self, settings: Settings, store: MailStore, transport: SmtpTransport) -> None:
        self.settings = settings
        self.store = store
        self.transport = transport
        self.links = MailLinks(settings.secret_key)
        self.sender = MailSender(store, transport.send, settings.mail_from)
        self.notifications: Notifications | None = None

    @classmethod
    def from_settings(cls, settings: Settings, db: Database) -> Mail | None:
        if not settings.smtp_url:
            return None
        return cls(settings, MailStore(db), SmtpTransport.from_url(settings.smtp_url))

    def start(self, state: State) -> None:
        """Listen to the discussion and start the sender and the hourly pruning."""
        settings, store = self.settings, self.store
        notifications = self.notifications = Notifications(
            state, store, self.links, self.sender.wake
        )
        listeners = state.discussion.listeners
        listeners.held.append(notifications.held)
        listeners.events.append(notifications.events)
        state.templates.env.globals["notify_replies"] = True
        state.health["mail"] = lambda: _queue_health(store)
        state.background.append(asyncio.create_task(self.sender.run(), name="kibitz-mail-sender"))
        state.background.append(asyncio.create_task(_prune_hourly(state, store)))
        log.info(
            "mail: sending through %s:%d as %s",
            self.transport.host,
            self.transport.port,
            settings.mail_from,
        )
        if urlsplit(settings.public_url).hostname in ("127.0.0.1", "localhost", "::1"):
            log.warning(
                "mail: KIBITZ_PUBLIC_URL is %s, so links in mails only work on this "
                "machine; set it to the address readers use",
                settings.public_url,
            )

    async def subscribe(self, comment: Comment) -> None:
        """Reply mail for this comment's author, after a confirmation mail."""
        assert self.notifications is not None, "Mail.start() runs in lifespan"
        await self.notifications.subscribe(comment)


async def _queue_health(store: MailStore) -> dict[str, object]:
    """For /healthz: a growing ``waiting`` with an old ``oldest_waiting`` means the mail
    server has been unreachable that long (``last_error`` in mail_queue says why)."""
    status = await store.status()
    oldest = status.oldest_waiting
    return {
        "waiting": status.waiting,
        "failed": status.failed,
        "oldest_waiting": oldest.strftime("%Y-%m-%dT%H:%M:%SZ") if oldest else None,
    }


async def _prune_hourly(state: State, store: MailStore) -> None:
    """Drop delivered mail after KIBITZ_ADDRESS_RETENTION_DAYS, surviving any error."""
    while True:
        try:
            at = now()
            pruned = await store.prune(
                at - timedelta(days=state.settings.address_retention_days),
                at - timedelta(days=LINK_DAYS + 1),
            )
            if pruned:
                log.info("mail: forgot %d delivered mails", pruned)
        except Exception:
            log.exception("pruning the mail queue failed; trying again in an hour")
        await asyncio.sleep(3600)
