"""Reply addresses: ``reply+TOKEN@domain``, so an answer to a mail can become a comment.

The token names the comment the mail was about and what kind of mail it was (``r``: a reply
notification to a subscriber, ``h``: a held-comment mail to staff), and when it was issued.
Its signature also covers the recipient's address, which the token does not carry: only a
message whose ``From`` is that address verifies. A held-comment token also carries the
comment's version the mail showed, so an answer approves only the text the moderator read.
Everything is lower-case letters, digits and ``-``, because mail systems may lower-case a
local part and 64 characters is its limit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

KINDS = ("r", "h")
SIGNATURE_BYTES = 10  # 80 bits: guessing one is out of reach, and it keeps the address short


class ReplyRefused(Exception):
    """The message cannot be taken; the text is the one line ``kibitz mail-in`` prints."""


@dataclass(frozen=True)
class ReplyToken:
    kind: str
    comment_id: int
    issued: int
    version: int | None = None  # the comment's version the mail showed (None: older tokens)


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


class ReplyTokens:
    def __init__(self, secret: str, days: int) -> None:
        self.key = hashlib.sha256(("kibitz.mail.reply:" + secret).encode()).digest()
        self.max_age = days * 86400

    def _sign(self, body: str, recipient: str) -> str:
        mac = hmac.new(self.key, f"{body}|{recipient.strip().lower()}".encode(), "sha256")
        return base64.b32encode(mac.digest()[:SIGNATURE_BYTES]).decode().lower()

    def token(
        self,
        kind: str,
        comment_id: int,
        recipient: str,
        issued: float | None = None,
        version: int | None = None,
    ) -> str:
        assert kind in KINDS
        body = f"{kind}{_b36(comment_id)}-{_b36(int(time.time() if issued is None else issued))}"
        if version is not None:
            body += f"-{_b36(version)}"
        return f"{body}-{self._sign(body, recipient)}"

    def check(self, token: str, sender: str, at: float | None = None) -> ReplyToken:
        """The token's content if it is genuine, made for ``sender`` and not expired."""
        parts = token.strip().lower().split("-")
        if len(parts) not in (3, 4) or not parts[0] or parts[0][0] not in KINDS:
            raise ReplyRefused("the reply address carries no valid token")
        body = "-".join(parts[:-1])
        if not hmac.compare_digest(self._sign(body, sender), parts[-1]):
            raise ReplyRefused("the token is forged or was not sent to this sender")
        try:
            comment_id, issued = int(parts[0][1:], 36), int(parts[1], 36)
            version = int(parts[2], 36) if len(parts) == 4 else None
        except ValueError:
            raise ReplyRefused("the reply address carries no valid token") from None
        if (time.time() if at is None else at) - issued > self.max_age:
            raise ReplyRefused("the token has expired (KIBITZ_MAIL_REPLY_DAYS)")
        return ReplyToken(parts[0][0], comment_id, issued, version)


def reply_address(base: str, token: str) -> str:
    """``reply@example.com`` and a token: ``reply+TOKEN@example.com``."""
    local, _, domain = base.rpartition("@")
    return f"{local}+{token}@{domain}"


def token_of(address: str, base: str) -> str | None:
    """The token in ``address`` if it is a plus-address of ``base`` (case-insensitive)."""
    local, _, domain = address.strip().lower().rpartition("@")
    base_local, _, base_domain = base.lower().rpartition("@")
    if domain != base_domain or not local.startswith(base_local + "+"):
        return None
    return local.removeprefix(base_local + "+") or None
