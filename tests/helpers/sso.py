"""Single sign-on tokens as a host site signs them (and as attackers forge them)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt

SECRET = "sso-test-secret-that-is-long-enough-for-every-hmac-0123456789abcdef"
POST = {"uri": "/posts/p", "text": "Hello from a signed-in reader"}


def token(secret: str = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    """A token as the host site signs it; ``None`` drops a claim."""
    body = {
        "sub": "user-42",
        "name": "Ada Reader",
        "email": "ada@site.example",
        "exp": int(time.time()) + 600,
        **claims,
    }
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm=algorithm)


def unsigned(**claims: Any) -> str:
    """A token with ``alg: none`` and no signature at all."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    body = {"sub": "user-42", "name": "Ada", "email": "ada@site.example"}
    body["exp"] = int(time.time()) + 600
    return part({"alg": "none", "typ": "JWT"}) + "." + part({**body, **claims}) + "."


def tampered() -> str:
    """A valid token whose payload was changed to another user after signing."""
    head, _, sig = token().split(".")
    other = base64.urlsafe_b64encode(
        json.dumps(
            {"sub": "admin", "name": "Admin", "email": "a@x.example", "exp": 2000000000}
        ).encode()
    )
    return f"{head}.{other.rstrip(b'=').decode()}.{sig}"
