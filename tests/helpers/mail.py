"""Mail for tests: a real SMTP server (aiosmtpd) that keeps what it accepts, a kibitz that
mails through it, and ``until``, which polls a condition against a deadline instead of
sleeping a fixed time."""

from __future__ import annotations

import asyncio
import contextlib
import email
import inspect
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from tests.helpers.servers import Server, free_port, make_settings, serve


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@dataclass
class Mailbox:
    inbox: Inbox
    port: int
    controller: Controller | None = None

    async def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        await asyncio.to_thread(self.controller.start)

    async def stop(self) -> None:
        if self.controller is not None:
            await asyncio.to_thread(self.controller.stop)
            self.controller = None


async def until(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float = 20.0,
    message: str = "timed out waiting",
) -> None:
    """Poll ``predicate`` (plain or async) until it holds; fail after ``timeout`` seconds,
    saying ``message``.

    Tests wait for a condition this way instead of sleeping a guessed time."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = predicate()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(message)
        await asyncio.sleep(0.02)


def mail_settings(
    database_url: str, tmp_path: Path, mailbox: Mailbox, port: int, **overrides: str
) -> Any:
    return make_settings(
        database_url,
        tmp_path,
        KIBITZ_SMTP_URL=f"smtp://127.0.0.1:{mailbox.port}",
        KIBITZ_MAIL_FROM="kibitz@comments.example.com",
        KIBITZ_PUBLIC_URL=f"http://127.0.0.1:{port}",
        **overrides,
    )


@contextlib.asynccontextmanager
async def serve_with_mail(
    database_url: str, tmp_path: Path, mailbox: Mailbox, *, smtp_up: bool = True, **overrides: str
) -> AsyncIterator[tuple[Server, httpx.AsyncClient]]:
    """A kibitz that mails through ``mailbox``, and a client of it. The mail server is started
    first unless ``smtp_up`` is false: then it is down until the test starts it."""
    if smtp_up:
        await mailbox.start()
    port = free_port()
    settings = mail_settings(database_url, tmp_path, mailbox, port, **overrides)
    async with serve(settings, port=port) as server, server.client() as client:
        yield server, client


def link_after(message: EmailMessage, label: str) -> str:
    body = message.get_content()
    found = re.search(re.escape(label) + r"\s+(http://\S+)", body)
    assert found, body
    return found.group(1)


def token_of(url: str) -> str:
    return url.split("?t=", 1)[1]
