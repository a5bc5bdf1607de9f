"""The background task that empties the mail queue, and only it talks to the mail server.

Requests never send mail: they queue a row (``db.mail``) and wake this task. The task claims
one due row at a time, hands it to the transport in a thread, and records the outcome. A
temporary failure reschedules the row with exponential backoff and jitter (so many processes
do not hammer a recovering server in step) and ends the round; a permanent one (5xx for that
recipient) marks it failed. The loop, its wake-up and its supervision are
:class:`server.queue_worker.QueueWorker`'s, shared with the webhook worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from db.mail import MailStore, QueuedMail
from db.models import now
from server.mail.smtp import PermanentFailure, TemporaryFailure
from server.queue_worker import QueueWorker, backoff

log = logging.getLogger("kibitz.mail")

Send = Callable[[EmailMessage], None]  # blocking; runs in a thread


def build_message(mail: QueuedMail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(now())
    # Tells autoresponders not to answer (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    for name, value in mail.headers.items():
        message[name] = value
    message.set_content(mail.body)
    return message


class MailSender(QueueWorker):
    def __init__(
        self,
        store: MailStore,
        send: Send,
        sender: str,
        *,
        poll: float = 10.0,
        backoff_base: float = 30.0,
        backoff_cap: float = 3600.0,
        lease: float = 300.0,
    ) -> None:
        super().__init__(log, "mail sender", poll, lease, backoff_base, backoff_cap)
        self.store = store
        self.send = send
        self.sender = sender
        self._resume_at: datetime | None = None  # set while the mail server is failing
        # Outcomes the database did not take (it was unreachable): written before anything
        # else, so a sent mail is not sent again and a failed one waits no longer than needed.
        self._unrecorded: list[Callable[[], Awaitable[None]]] = []
        self._lost_claims = False  # a round failed: a claim may have committed unseen

    async def _round(self, woken: bool) -> None:
        """While the mail server rests, only a newly queued mail (a wake) tries it early."""
        if woken or self._resume_at is None or now() >= self._resume_at:
            await self.deliver_due()

    async def _until_next_due(self) -> float:
        due = await self.store.next_due()
        if self._resume_at is not None and (due is None or due < self._resume_at):
            due = self._resume_at
        if due is None:
            return self.poll
        return max(0.05, min(self.poll, (due - now()).total_seconds()))

    async def deliver_due(self) -> int:
        """Send every mail that is due; stop at the first temporary failure. Returns sent."""
        while self._unrecorded:
            await self._unrecorded[0]()
            self._unrecorded.pop(0)
        if self._lost_claims:
            await self.store.release_leases(self.owner, now())
            self._lost_claims = False
        sent = 0
        while True:
            started = now()
            self._lost_claims = True  # until the claim's answer is in hand
            mail = await self.store.claim(
                started, started + timedelta(seconds=self.lease), self.owner
            )
            self._lost_claims = False
            if mail is None:
                return sent
            try:
                message = build_message(mail, self.sender)
            except (ValueError, TypeError) as exc:  # a header no mail server would take
                log.error("mail %d cannot be built: %s", mail.id, exc)
                await self._record(
                    self.store.mark_failed, mail.id, f"cannot build the message: {exc}"
                )
                continue
            try:
                await asyncio.to_thread(self.send, message)
            except PermanentFailure as exc:
                log.error("mail %d to %s refused for good: %s", mail.id, mail.recipient, exc)
                await self._record(self.store.mark_failed, mail.id, str(exc))
                continue
            except TemporaryFailure as exc:
                delay = backoff(mail.attempts + 1, self.backoff_base, self.backoff_cap)
                log.warning(
                    "mail %d not sent (attempt %d), retrying in %.0f s: %s",
                    mail.id,
                    mail.attempts + 1,
                    delay,
                    exc,
                )
                await self._record(self.store.retry_later, mail.id, _after(delay), str(exc))
                # The server is likely down for every mail: rest before trying the next one
                # (a newly queued mail still wakes the sender and is tried at once).
                self._resume_at = _after(delay)
                return sent
            self._resume_at = None
            await self._record(self.store.mark_sent, mail.id)
            sent += 1

    async def _record(self, write: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Write an outcome; if the database fails, keep it to write first next round."""
        try:
            await write(*args)
        except Exception:
            self._unrecorded.append(lambda: write(*args))
            raise


def _after(seconds: float) -> datetime:
    return now() + timedelta(seconds=seconds)
