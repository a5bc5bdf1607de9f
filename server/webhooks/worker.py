"""The background task that empties the webhook queue: signs, sends, records the outcome.

Every process runs one. Each claims due rows with a lease (:meth:`db.webhooks.WebhookStore.
claim`), so a row goes to one process at a time whatever their number: a claim takes *runs*,
the head of an (endpoint, thread) line and the due rows behind it, and each run is sent in
order in a task of its own, up to ``slots`` at once, so a slow or dead receiver holds one
slot for at most the client's deadline and never the queue, and different threads go in
parallel. What became of the runs that finished is written by the next round, in the same
transaction as its claim: one write per round, not per message. A failed attempt is retried
with exponential backoff and jitter (the first retry within seconds) until the row is
:data:`RETRY_FOR` old, then marked failed with its last error, which the admin shows. The
loop, its wake-up and its supervision are :class:`server.queue_worker.QueueWorker`'s, shared
with the mail sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from datetime import datetime, timedelta

from standardwebhooks.webhooks import Webhook

from db.models import now
from db.webhooks import Delivery, Outcome, WebhookStore
from server.queue_worker import QueueWorker, backoff
from server.webhooks.client import SendError, WebhookClient

log = logging.getLogger("kibitz.webhooks")

RETRY_FOR = timedelta(hours=24)


@functools.lru_cache(maxsize=256)
def signer(secret: str) -> Webhook:
    """An endpoint's signer, made once: it decodes the secret's base64 on creation."""
    return Webhook(secret)


def signed_headers(delivery: Delivery, body: bytes, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers: the id is the row's (kept across retries), the
    timestamp is this attempt's, in whole seconds."""
    return {
        "content-type": "application/json",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signer(delivery.secret).sign(delivery.message_id, at, body),
    }


class WebhookWorker(QueueWorker):
    def __init__(
        self,
        store: WebhookStore,
        client: WebhookClient,
        *,
        slots: int = 16,
        poll: float = 5.0,
        lease: float = 60.0,
        backoff_base: float = 2.0,
        backoff_cap: float = 3600.0,
        retry_for: timedelta = RETRY_FOR,
    ) -> None:
        super().__init__(log, "webhook worker", poll, lease, backoff_base, backoff_cap)
        self.store = store
        self.client = client
        self.slots = slots
        self.retry_for = retry_for
        self._sending: set[asyncio.Task[None]] = set()
        # What became of the runs sent since the last round, written by the next round in
        # the transaction that claims more: one transaction (on SQLite one disk flush) per
        # round, not one per message, which capped delivery at the disk's flushes a second.
        self._finished: list[Outcome] = []

    async def run(self) -> None:
        """Deliver forever; the caller cancels the task at shutdown."""
        try:
            await super().run()
        finally:
            for task in self._sending:
                task.cancel()  # their leases run out and another round sends them again
            await asyncio.gather(*self._sending, return_exceptions=True)
            if self._finished:
                with contextlib.suppress(Exception):  # else their leases run out: sent again
                    await self.store.record(self._finished, now(), self.owner)
            await self.client.close()

    async def _round(self, woken: bool) -> None:
        """Record the runs sent since the last round and fill the free slots with runs that
        are due, in one transaction."""
        free = self.slots - len(self._sending)
        finished, self._finished = self._finished, []
        if not finished:
            if free <= 0:
                return
            due = await self.store.next_due()  # a read: no write transaction when idle
            if due is None or due > now():
                return
        started = now()
        try:
            runs = await self.store.claim(
                started,
                started + timedelta(seconds=self.lease),
                self.owner,
                max(0, free),
                finished=finished,
            )
        except BaseException:
            self._finished[:0] = finished  # written by the next round
            raise
        for run in runs:
            task = asyncio.create_task(self._send_run(run), name=f"webhook-{run[0].id}")
            self._sending.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self.wake()  # a slot is free, and the next row of that line may now be due

    async def _until_next_due(self) -> float:
        if len(self._sending) >= self.slots:
            return self.poll  # a finishing send wakes the loop
        due = await self.store.next_due()
        if due is None:
            return self.poll
        wait = (due - now()).total_seconds()
        # Due already but not claimed: it waits behind a row being sent, whose end wakes us.
        return self.poll if wait <= 0 else max(0.05, min(self.poll, wait))

    async def _send_run(self, run: list[Delivery]) -> None:
        """Send one line's leased rows in order; the next round records what became of
        them (:meth:`_sent` wakes it)."""
        outcome = await self._deliver(run)
        # Not ``self._finished.append(await ...)``: that binds the list before the await,
        # and a round may swap it for a fresh one meanwhile, losing the outcome.
        self._finished.append(outcome)

    async def _deliver(self, run: list[Delivery]) -> Outcome:
        """Send until the first failure (the rest wait behind it) or until the lease is half
        spent (another process may claim them then)."""
        loop = asyncio.get_running_loop()
        claimed = loop.time()
        delivered: list[int] = []
        for index, delivery in enumerate(run):
            rest = [d.id for d in run[index:]]
            if loop.time() - claimed > self.lease / 2:
                return Outcome(delivered, rest)
            try:
                error = await self.attempt(delivery)
            except asyncio.CancelledError:
                # Shutting down: record what was sent and hand the rest back now rather
                # than when the lease runs out, so the next process sends them at once.
                with contextlib.suppress(Exception):
                    await self.store.record([Outcome(delivered, rest)], now(), self.owner)
                raise
            if error is None:
                delivered.append(delivery.id)
                continue
            if now() - delivery.created >= self.retry_for:
                log.warning("webhook %d given up after %s: %s", delivery.id, self.retry_for, error)
                return Outcome(delivered, rest[1:], delivery.id, error)
            delay = backoff(delivery.attempts + 1, self.backoff_base, self.backoff_cap)
            log.info(
                "webhook %d to %s failed (attempt %d), retrying in %.0f s: %s",
                delivery.id,
                delivery.url,
                delivery.attempts + 1,
                delay,
                error,
            )
            return Outcome(
                delivered, rest[1:], delivery.id, error, now() + timedelta(seconds=delay)
            )
        return Outcome(delivered, [])

    async def attempt(self, delivery: Delivery) -> str | None:
        """Send once; None when the receiver took it (2xx), else what went wrong."""
        body = delivery.body.encode()
        try:
            answer = await self.client.post(
                delivery.url, signed_headers(delivery, body, now()), body
            )
        except TimeoutError:
            return "no answer within the deadline"
        except SendError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # a surprise from the client: retried, not leased for nothing
            log.exception("webhook %d: unexpected error sending", delivery.id)
            return f"{type(exc).__name__}: {exc}"
        if 200 <= answer.status < 300:
            return None
        if 300 <= answer.status < 400:
            return f"HTTP {answer.status}: redirect to {answer.location} not followed"
        text = answer.body[:200].decode("utf-8", "replace").strip()
        return f"HTTP {answer.status}" + (f": {text}" if text else "")
