"""Handing one message to the operator's mail server, described by ``KIBITZ_SMTP_URL``.

``smtp://user:pass@host:587`` speaks plain SMTP and upgrades with STARTTLS whenever the
server offers it; ``smtps://host:465`` speaks TLS from the first byte. The standard library's
``smtplib`` is blocking, so callers run :meth:`SmtpTransport.send` in a thread
(``asyncio.to_thread``): one message per connection is plenty for notification volumes and
needs no new dependency.

Failures come in two kinds, because the queue must treat them differently:
:class:`TemporaryFailure` (server down, timeout, 4xx, bad credentials the operator can fix)
means "try again later"; :class:`PermanentFailure` (the server refused this recipient or
message with 5xx) means retrying would only fail again.
"""

from __future__ import annotations

import ipaddress
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cache
from urllib.parse import unquote, urlsplit


class MailError(Exception):
    """The root of sending errors."""


class TemporaryFailure(MailError):
    """Sending failed for now; the same message may go out on a later attempt."""


class PermanentFailure(MailError):
    """The server refused this message for good (a 5xx for its recipient or content)."""


@cache
def _system_tls() -> ssl.SSLContext:
    # Loading the system's certificates takes longer than sending a mail: do it once.
    return ssl.create_default_context()


@dataclass(frozen=True)
class SmtpTransport:
    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None
    timeout: float = 30.0
    # None: the system's trusted certificates (ssl.create_default_context()).
    tls_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_url(cls, url: str, timeout: float = 30.0) -> SmtpTransport:
        parts = urlsplit(url)
        implicit_tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (465 if implicit_tls else 25),
            implicit_tls=implicit_tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=timeout,
        )

    def _local(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` (blocking); raise TemporaryFailure or PermanentFailure."""
        try:
            self._send(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            kind = PermanentFailure if codes and all(c >= 500 for c in codes) else TemporaryFailure
            raise kind(f"recipient refused: {exc.recipients}") from exc
        except smtplib.SMTPDataError as exc:
            kind = PermanentFailure if exc.smtp_code >= 500 else TemporaryFailure
            raise kind(f"message refused: {exc.smtp_code} {exc.smtp_error!r}") from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            # Includes refused connections, timeouts, TLS errors, 4xx, and authentication or
            # sender errors: all things that get better when the server or settings do.
            raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from exc

    def _send(self, message: EmailMessage) -> None:
        context = self.tls_context or _system_tls()
        client: smtplib.SMTP
        if self.implicit_tls:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            client.ehlo()
            encrypted = self.implicit_tls
            if not encrypted and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
                encrypted = True
            if self.username:
                if not encrypted and not self._local():
                    raise TemporaryFailure(
                        f"{self.host} offers no STARTTLS: refusing to send the SMTP password "
                        "in clear text (use smtps:// or a server that offers STARTTLS)"
                    )
                client.login(self.username, self.password or "")
            client.send_message(message)
