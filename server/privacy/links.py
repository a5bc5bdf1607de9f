"""The signed link a commenter gets by mail: it names one e-mail address, for 24 hours.

Its own itsdangerous salt keeps it from being taken for any other kibitz token.
"""

from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from server.errors import Forbidden
from server.i18n import N_
from server.mail.links import _issued_at

SALT = "kibitz.privacy.own-data"
LINK_HOURS = 24  # the mail and the expiry message say 24 hours too


class PrivacyLinks:
    def __init__(self, secret: str, max_age: int = LINK_HOURS * 3600) -> None:
        self.secret = secret
        self.max_age = max_age
        self._serializer = URLSafeTimedSerializer(secret, salt=SALT)

    def token(self, email: str, issued: float | None = None) -> str:
        """A link token for ``email``; ``issued`` back-dates it (to test expiry)."""
        value = email.strip().lower()
        if issued is None:
            return self._serializer.dumps(value)
        return _issued_at(self.secret, SALT, issued).dumps(value)

    def email(self, token: str) -> str:
        try:
            value = self._serializer.loads(token, max_age=self.max_age)
        except SignatureExpired:
            raise Forbidden(
                N_("This link has expired: it works for 24 hours. Ask for a new one.")
            ) from None
        except BadSignature:
            raise Forbidden(
                N_("This link is not valid. Copy the whole address from the e-mail.")
            ) from None
        if not isinstance(value, str) or "@" not in value:
            raise Forbidden(N_("This link is not valid. Copy the whole address from the e-mail."))
        return value
