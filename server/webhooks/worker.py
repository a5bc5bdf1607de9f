"""The background task that empties the webhook queue: signs, sends, records the outcome.

Every process runs one. Each claims due rows with a lease (:meth:`db.webhooks.WebhookStore.
claim`), so a row goes to one process at a time whatever their number, and sends each claimed
row in a task of its own: a slow or dead receiver holds one slot for at most the client's
deadline and never the queue. A failed attempt is retried with exponential backoff and jitter
(the first retry within seconds) until the row is :data:`RETRY_FOR` old, then marked failed
with its last error, which the admin shows. The loop, its wake-up and its supervision are
:class:`server.queue_worker.QueueWorker`'s, shared with the mail sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

import httpx
from standardwebhooks.webhooks import Webhook

from db.models import now
from db.webhooks import Delivery, WebhookStore
from server.queue_worker import QueueWorker, backoff
from server.webhooks.client import WebhookClient

log = logging.getLogger("kibitz.webhooks")

RETRY_FOR = timedelta(hours=24)


def signed_headers(delivery: Delivery, body: bytes, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers: the id is the row's (kept across retries), the
    timestamp is this attempt's, in whole seconds."""
    return {
        "content-type": "application/json",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(delivery.secret).sign(delivery.message_id, at, body),
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

    async def run(self) -> None:
        """Deliver forever; the caller cancels the task at shutdown."""
        try:
            await super().run()
        finally:
            for task in self._sending:
                task.cancel()  # their leases run out and another round sends them again
            await asyncio.gather(*self._sending, return_exceptions=True)
            await self.client.close()

    async def _round(self, woken: bool) -> None:
        """Fill the free slots with runs that are due."""
        free = self.slots - len(self._sending)
        if free <= 0:
            return
        due = await self.store.next_due()  # a read: no write transaction when idle
        started = now()
        if due is None or due > started:
            return
        for run in await self.store.claim(
            started, started + timedelta(seconds=self.lease), self.owner, free
        ):
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
        """Send one line's leased rows in order; stop at the first failure (the rest wait
        behind it) or when the lease is half spent (another process may claim them then)."""
        claimed = asyncio.get_running_loop().time()
        for index, delivery in enumerate(run):
            late = asyncio.get_running_loop().time() - claimed > self.lease / 2
            try:
                sent = not late and await self._send(delivery)
            except asyncio.CancelledError:
                # Shutting down: hand the rest back now rather than when the lease runs
                # out, so the next process to start sends them at once.
                with contextlib.suppress(Exception):
                    await self.store.release([d.id for d in run[index:]], now())
                raise
            if not sent:
                try:
                    await self.store.release(
                        [d.id for d in run[index + (0 if late else 1) :]], now()
                    )
                except Exception:
                    log.exception("could not release webhook rows; their lease will run out")
                return

    async def _send(self, delivery: Delivery) -> bool:
        """Send one row and record the outcome; True when the receiver took it."""
        error = await self.attempt(delivery)
        try:
            if error is None:
                await self.store.mark_delivered(delivery.id)
                return True
            if now() - delivery.created >= self.retry_for:
                log.warning("webhook %d given up after %s: %s", delivery.id, self.retry_for, error)
                await self.store.mark_failed(delivery.id, error)
            else:
                delay = backoff(delivery.attempts + 1, self.backoff_base, self.backoff_cap)
                log.info(
                    "webhook %d to %s failed (attempt %d), retrying in %.0f s: %s",
                    delivery.id,
                    delivery.url,
                    delivery.attempts + 1,
                    delay,
                    error,
                )
                await self.store.retry_later(delivery.id, now() + timedelta(seconds=delay), error)
        except Exception:
            # The lease runs out and the row is sent again: at least once, never lost.
            log.exception("could not record the outcome of webhook %d", delivery.id)
        return False

    async def attempt(self, delivery: Delivery) -> str | None:
        """Send once; None when the receiver took it (2xx), else what went wrong."""
        body = delivery.body.encode()
        try:
            answer = await self.client.post(
                delivery.url, signed_headers(delivery, body, now()), body
            )
        except TimeoutError:
            return "no answer within the deadline"
        except (httpx.HTTPError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if 200 <= answer.status < 300:
            return None
        if 300 <= answer.status < 400:
            return f"HTTP {answer.status}: redirect to {answer.location} not followed"
        text = answer.body[:200].decode("utf-8", "replace").strip()
        return f"HTTP {answer.status}" + (f": {text}" if text else "")
