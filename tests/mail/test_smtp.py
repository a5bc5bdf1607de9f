"""The SMTP transport and the queue's failure handling, against real aiosmtpd servers."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from db.database import connect
from db.mail import MailStore, OutgoingMail
from db.migrate import migrate
from db.models import now
from server.mail.queue import MailSender
from server.mail.smtp import PermanentFailure, SmtpTransport, TemporaryFailure
from tests.helpers.mail import Inbox, until
from tests.helpers.servers import free_port


def message(to: str = "reader@example.org") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "kibitz@example.org", to, "hello"
    msg.set_content("body")
    return msg


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the system's openssl."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_starttls_then_login_with_url_credentials(certificate: tuple[Path, Path]) -> None:
    """smtp:// upgrades with STARTTLS when offered, then logs in with the URL's user:pass."""
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    seen: list[tuple[bytes, bytes, bool]] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        seen.append((data.login, data.password, session.ssl is not None))
        return AuthResult(success=data.password == b"p@ss word")

    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_tls,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    await asyncio.to_thread(controller.start)
    try:
        url = f"smtp://mailer:p%40ss%20word@127.0.0.1:{port}"
        transport = SmtpTransport.from_url(url)
        trusting = ssl.create_default_context(cafile=str(cert))
        transport = SmtpTransport(
            transport.host,
            transport.port,
            False,
            transport.username,
            transport.password,
            tls_context=trusting,
        )
        await asyncio.to_thread(transport.send, message())
        # (aiosmtpd leaves smtplib's fallback to AUTH LOGIN hanging: a short timeout.)
        wrong = SmtpTransport(
            transport.host, transport.port, False, "mailer", "nope", timeout=2, tls_context=trusting
        )
        with pytest.raises(TemporaryFailure):
            await asyncio.to_thread(wrong.send, message())
        untrusted = SmtpTransport.from_url(url)  # the self-signed certificate is not trusted
        with pytest.raises(TemporaryFailure):
            await asyncio.to_thread(untrusted.send, message())
    finally:
        await asyncio.to_thread(controller.stop)
    assert len(inbox.messages) == 1
    assert seen[0] == (b"mailer", b"p@ss word", True)


class Refusing(Inbox):
    """Refuses one recipient for good (550) and one for now (451)."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("gone@"):
            return "550 5.1.1 no such user"
        if address.startswith("busy@"):
            return "451 4.3.0 try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


async def test_transport_tells_permanent_from_temporary_refusals() -> None:
    """A 5xx for the recipient is permanent, a 4xx or a closed port temporary."""
    port = free_port()
    with pytest.raises(TemporaryFailure):  # nothing listens yet
        await asyncio.to_thread(SmtpTransport.from_url(f"smtp://127.0.0.1:{port}").send, message())
    inbox = Refusing()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    try:
        transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}")
        with pytest.raises(PermanentFailure):
            await asyncio.to_thread(transport.send, message("gone@example.org"))
        with pytest.raises(TemporaryFailure):
            await asyncio.to_thread(transport.send, message("busy@example.org"))
        await asyncio.to_thread(transport.send, message())
    finally:
        await asyncio.to_thread(controller.stop)
    assert [m["To"] for m in inbox.messages] == ["reader@example.org"]


async def test_queue_fails_refused_mail_and_still_sends_the_rest(database_url: str) -> None:
    """A permanently refused mail is marked failed; a temporarily refused one waits; others go."""
    db = await connect(database_url)
    await migrate(db)
    inbox = Refusing()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    try:
        store = MailStore(db)
        for n, to in enumerate(("gone@example.org", "busy@example.org", "ok@example.org")):
            assert await store.enqueue(OutgoingMail(f"test:{n}", to, "s", "b"))
        assert not await store.enqueue(OutgoingMail("test:2", "ok@example.org", "s", "b"))
        transport = SmtpTransport.from_url(f"smtp://127.0.0.1:{port}")
        sender = MailSender(
            store,
            transport.send,
            "kibitz@example.org",
            backoff_base=0.05,
            backoff_cap=0.1,
            poll=0.1,
        )
        task = asyncio.create_task(sender.run())
        try:
            await until(lambda: len(inbox.messages) == 1)

            async def busy_retried_and_gone_failed() -> bool:
                async with db.read() as conn:
                    attempts = await conn.fetchval(
                        "SELECT attempts FROM mail_queue WHERE recipient = $1", "busy@example.org"
                    )
                return bool(attempts >= 2 and (await store.status()).failed == 1)

            await until(busy_retried_and_gone_failed)  # the busy one was retried
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        status = await store.status()
        async with db.read() as conn:
            busy = await conn.fetchrow(
                "SELECT attempts, last_error FROM mail_queue WHERE recipient = $1",
                "busy@example.org",
            )
        assert (status.sent, status.failed, status.waiting) == (1, 1, 1)
        assert busy["attempts"] >= 2 and "451" in busy["last_error"]

        # Delivered and failed mail is forgotten after the retention time; waiting mail stays.
        later = now() + timedelta(days=1)
        assert await store.prune(later, later) == 2
        assert (await store.status()).waiting == 1
    finally:
        await asyncio.to_thread(controller.stop)
        await db.close()


async def test_lost_claims_are_released_but_backoffs_are_kept(database_url: str) -> None:
    """A sender's own leases come back at once; a mail waiting out a backoff keeps waiting."""
    db = await connect(database_url)
    await migrate(db)
    try:
        store = MailStore(db)
        for n in range(2):
            await store.enqueue(OutgoingMail(f"lease:{n}", f"r{n}@example.org", "s", "b"))
        at = now()
        later = at + timedelta(minutes=5)
        first = await store.claim(at, later, "me")
        second = await store.claim(at, later, "me")
        assert first and second and await store.claim(at, later, "other") is None
        await store.retry_later(second.id, later, "451 busy")
        assert await store.release_leases("other", at) == 0
        assert await store.release_leases("me", at) == 1
        again = await store.claim(now(), later, "other")
        assert again is not None and again.id == first.id
        assert await store.claim(now(), later, "other") is None  # the backoff stands
    finally:
        await db.close()


async def test_smtps_speaks_tls_from_the_first_byte(certificate: tuple[Path, Path]) -> None:
    """smtps:// connects with TLS at once (port 465 style), checking the certificate."""
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=server_tls)
    await asyncio.to_thread(controller.start)
    try:
        plain = SmtpTransport.from_url(f"smtps://127.0.0.1:{port}")
        assert plain.implicit_tls and SmtpTransport.from_url("smtps://mail.example").port == 465
        trusting = SmtpTransport(
            plain.host,
            plain.port,
            True,
            None,
            None,
            tls_context=ssl.create_default_context(cafile=str(cert)),
        )
        await asyncio.to_thread(trusting.send, message())
        with pytest.raises(TemporaryFailure):  # the system does not trust a self-signed cert
            await asyncio.to_thread(plain.send, message())
    finally:
        await asyncio.to_thread(controller.stop)
    assert len(inbox.messages) == 1
