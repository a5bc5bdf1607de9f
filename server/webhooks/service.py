"""Webhooks as a service of the app: managing endpoints, and wiring queue and worker in.

Both edges (the JSON API and the admin page) come through :class:`Webhooks`, so the rules
for a URL, the events and the secret cannot differ between them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from db.comments import Outbox
from db.database import Database
from db.models import now
from db.webhooks import WANTED, Endpoint, WebhookStore
from server.errors import NotFound, ValidationFailed
from server.i18n import N_
from server.settings import Settings
from server.webhooks import outbox
from server.webhooks.client import WebhookClient, allowed
from server.webhooks.events import EVENTS, TEST_EVENT
from server.webhooks.worker import WebhookWorker

if TYPE_CHECKING:
    from server.state import State

log = logging.getLogger("kibitz.webhooks")

MAX_URL = 2000
SECRET_BYTES = 32


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and the base64 of a random key."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@dataclass(frozen=True)
class EndpointInput:
    url: str
    events: tuple[str, ...]
    private: bool
    secret: str | None


def validate_endpoint(data: dict[str, Any], *, allow_private: bool) -> EndpointInput:
    """Check an endpoint as sent; 422 with a message per field that is wrong."""
    errors: dict[str, str] = {}
    url = data.get("url")
    if not isinstance(url, str) or not _url_ok(url.strip(), allow_private):
        errors["url"] = N_(
            "Give an http:// or https:// URL with a host that is not a private address."
        )
    events = data.get("events")
    if (
        not isinstance(events, list)
        or not events
        or not all(isinstance(e, str) and e in EVENTS for e in events)
    ):
        errors["events"] = N_("List one or more known events, such as comment.created.")
    private = data.get("private", False)
    if not isinstance(private, bool):
        errors["private"] = N_("Use true or false.")
    secret = data.get("secret")
    if secret is not None and not (isinstance(secret, str) and _secret_ok(secret)):
        errors["secret"] = N_("Leave it out, or give whsec_ and the base64 of 24 to 64 bytes.")
    if errors:
        raise ValidationFailed(fields=errors)
    assert isinstance(url, str) and isinstance(events, list) and isinstance(private, bool)
    return EndpointInput(url.strip(), tuple(dict.fromkeys(events)), private, secret)


def _url_ok(url: str, allow_private: bool) -> bool:
    if len(url) > MAX_URL or any(c.isspace() for c in url):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host or parts.username is not None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True  # a name: checked at connect time, every time
    return allow_private or allowed(address)


def _secret_ok(secret: str) -> bool:
    if not secret.startswith("whsec_"):
        return False
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return 24 <= len(key) <= 64


class Webhooks:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.store = WebhookStore(db)
        self.worker = WebhookWorker(self.store, WebhookClient(settings.webhook_allow_private))

    # -- endpoints ---------------------------------------------------------------------------

    async def create(self, data: dict[str, Any]) -> tuple[Endpoint, str]:
        """Validate and store an endpoint; returns it with its secret (shown this once)."""
        wanted = validate_endpoint(data, allow_private=self.settings.webhook_allow_private)
        secret = wanted.secret or new_secret()
        endpoint = await self.store.add_endpoint(wanted.url, wanted.events, wanted.private, secret)
        return endpoint, secret

    async def delete(self, endpoint_id: int) -> None:
        if not await self.store.delete_endpoint(endpoint_id):
            raise NotFound(N_("There is no webhook endpoint with that id."))

    async def send_test(self, endpoint_id: int) -> None:
        endpoint = await self.store.endpoint(endpoint_id)
        if endpoint is None:
            raise NotFound(N_("There is no webhook endpoint with that id."))
        body = outbox.body(TEST_EVENT, {"endpoint": endpoint.id, "url": endpoint.url})
        await self.store.enqueue_test(endpoint.id, outbox.message_id(), body)
        self.worker.wake()

    # -- running -----------------------------------------------------------------------------

    def start(self, state: State, *, background: bool = True) -> None:
        """Write the outbox in every comment transaction, wake the worker after each commit,
        start the worker and the daily pruning."""
        state.comments.outbox.append(Outbox(outbox.write, WANTED))
        state.comments.outbox_committed.append(self.worker.wake)
        state.threads.store.closed_outbox.append(outbox.write_closed)
        state.threads.store.outbox_committed.append(self.worker.wake)
        if not background:
            return
        state.background.append(
            asyncio.create_task(self.worker.run(), name="kibitz-webhook-worker")
        )
        state.background.append(asyncio.create_task(self._prune_hourly()))

    async def _prune_hourly(self) -> None:
        """Drop finished deliveries after KIBITZ_ADDRESS_RETENTION_DAYS (private bodies hold
        e-mail and client addresses), surviving any error."""
        while True:
            try:
                days = max(1, self.settings.address_retention_days)
                pruned = await self.store.prune(now() - timedelta(days=days))
                if pruned:
                    log.info("webhooks: forgot %d finished deliveries", pruned)
            except Exception:
                log.exception("pruning the webhook queue failed; trying again in an hour")
            await asyncio.sleep(3600)


def endpoint_json(endpoint: Endpoint, secret: str | None = None) -> dict[str, Any]:
    shaped: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "private": endpoint.private,
    }
    if secret is not None:
        shaped["secret"] = secret
    return shaped
