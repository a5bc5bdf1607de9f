"""Who may do what: staff credentials, password hashes, and commenters' edit tokens."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.requests import HTTPConnection

from server.errors import Forbidden
from server.i18n import N_

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# A hash to verify against when the account does not exist, so both answers take as long.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


API_TOKEN_PREFIX = "kbz_"  # tells an API token from an edit token at a glance


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def is_api_token(token: str) -> bool:
    return token.startswith(API_TOKEN_PREFIX)


def bearer(conn: HTTPConnection) -> str | None:
    value = conn.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class EditTokens:
    """Signed, expiring tokens that let a commenter edit or delete one comment.

    itsdangerous compares signatures in constant time; the comment id inside the signed
    payload binds a token to exactly one comment.
    """

    def __init__(self, secret: str, window: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="kibitz.edit-token")
        self.window = window

    def issue(self, comment_id: int) -> str:
        return self._serializer.dumps(comment_id)

    def check(self, token: str | None, comment_id: int) -> None:
        if not token:
            raise Forbidden(N_("Send the comment's edit token as 'Authorization: Bearer …'."))
        try:
            value = self._serializer.loads(token, max_age=self.window)
        except SignatureExpired:
            raise Forbidden(N_("The time to edit or delete this comment has passed.")) from None
        except BadSignature:
            raise Forbidden(N_("This edit token is not valid for this comment.")) from None
        if value != comment_id:
            raise Forbidden(N_("This edit token is not valid for this comment."))
