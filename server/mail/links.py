"""Signed links in mails: moderate one held comment, confirm or end a reply subscription.

Each kind has its own itsdangerous salt, so a token of one kind is never accepted as another.
A moderation link names one comment, one staff member and one action, expires after
``LINK_DAYS``, and carries a nonce shared by the approve and spam links of the same mail: the
first use spends the nonce (``db.mail.MailStore.spend_link``), so the mail acts once. The
unsubscribe link never expires: leaving must always work.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import (
    BadSignature,
    SignatureExpired,
    TimestampSigner,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)

from server.discussion.moderation import MAIL_ACTIONS, Action, parse_action
from server.errors import Forbidden

LINK_DAYS = 7  # the expiry message below says 7 days too


@dataclass(frozen=True)
class ModerationLink:
    comment_id: int
    staff_id: int
    action: Action
    nonce: str
    version: int | None = None  # the comment's version the mail showed (None: older links)


def _issued_at(secret: str, salt: str, issued: float) -> URLSafeTimedSerializer:
    """A serializer whose clock is set, so an expired link can be made on purpose (tests)."""

    class FixedClock(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(issued)

    return URLSafeTimedSerializer(secret, salt=salt, signer=FixedClock)


class MailLinks:
    def __init__(self, secret: str, max_age: int = LINK_DAYS * 86400) -> None:
        self.secret = secret
        self.max_age = max_age
        self._moderate = URLSafeTimedSerializer(secret, salt="kibitz.mail.moderate")
        self._confirm = URLSafeTimedSerializer(secret, salt="kibitz.mail.confirm")
        self._unsubscribe = URLSafeSerializer(secret, salt="kibitz.mail.unsubscribe")

    # -- moderation ------------------------------------------------------------------------

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(16)

    def moderation_token(
        self,
        comment_id: int,
        staff_id: int,
        action: Action,
        nonce: str,
        issued: float | None = None,
        version: int | None = None,
    ) -> str:
        assert action in MAIL_ACTIONS
        payload: list[object] = [comment_id, staff_id, str(action), nonce]
        if version is not None:
            payload.append(version)
        if issued is None:
            return self._moderate.dumps(payload)
        return _issued_at(self.secret, "kibitz.mail.moderate", issued).dumps(payload)

    def moderation(self, token: str) -> ModerationLink:
        value = self._load(self._moderate, token)
        try:
            comment_id, staff_id, action, nonce, *rest = value
            version = int(rest[0]) if rest else None
        except (TypeError, ValueError):
            raise Forbidden(N_("This link is not valid.")) from None
        checked = parse_action(action, MAIL_ACTIONS)
        if checked is None:
            raise Forbidden(N_("This link is not valid."))
        return ModerationLink(int(comment_id), int(staff_id), checked, str(nonce), version)

    # -- reply subscriptions ---------------------------------------------------------------

    def confirm_token(self, subscription_id: int, issued: float | None = None) -> str:
        if issued is None:
            return self._confirm.dumps(subscription_id)
        return _issued_at(self.secret, "kibitz.mail.confirm", issued).dumps(subscription_id)

    def confirmation(self, token: str) -> int:
        return int(self._load(self._confirm, token))

    def unsubscribe_token(self, subscription_id: int) -> str:
        return self._unsubscribe.dumps(subscription_id)

    def unsubscription(self, token: str) -> int:
        try:
            return int(self._unsubscribe.loads(token))
        except (BadSignature, TypeError, ValueError):
            raise Forbidden(
                N_("This link is not valid. Copy the whole address from the e-mail.")
            ) from None

    def _load(self, serializer: URLSafeTimedSerializer, token: str) -> Any:
        try:
            return serializer.loads(token, max_age=self.max_age)
        except SignatureExpired:
            raise Forbidden(
                N_("This link has expired: links in e-mails work for 7 days.")
            ) from None
        except BadSignature:
            raise Forbidden(
                N_("This link is not valid. Copy the whole address from the e-mail.")
            ) from None


def N_(message: str) -> str:
    """Marks a message for the catalogue (as ``server.i18n.N_`` does); pages translate it."""
    return message
