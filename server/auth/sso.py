"""Single sign-on: the embedding site vouches for its logged-in reader with a signed JWT.

The site signs ``{"sub", "name", "email", "exp", "website"?, "iat"?}`` with HS256 and the
shared ``KIBITZ_SSO_SECRET`` (docs/sso.md). Verification is PyJWT's, with the algorithm
pinned: the token's own ``alg`` header is never trusted, so ``none`` and RS/HS confusion
cannot get in. ``exp`` is required (a leaked token stops working), with a small leeway for
clocks that disagree a little.

The token is a credential: it is never logged, stored or echoed. Errors name what is wrong
with it, never its content, and are raised ``from None`` so no traceback carries it either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from server.errors import Unauthorized
from server.i18n import N_

ALGORITHM = "HS256"
LEEWAY_SECONDS = 30
MAX_TOKEN = 4096  # bytes; a real token with four short claims is a few hundred
MAX_SUB = 200
REQUIRED = ("sub", "name", "email", "exp")

NOT_ENABLED = N_("Single sign-on is not enabled on this site.")
MALFORMED = N_("The sign-in token is malformed.")
TOO_LARGE = N_("The sign-in token is too large.")
EXPIRED = N_("Your sign-in has expired. Reload the page or sign in again.")
BAD_SIGNATURE = N_("The sign-in token's signature is not valid.")
WRONG_ALGORITHM = N_("The sign-in token must be signed with HS256.")
MISSING_CLAIM = N_("The sign-in token lacks a required claim: sub, name, email and exp are needed.")
BAD_CLAIMS = N_("The sign-in token's claims are not valid.")
SIGN_IN_REQUIRED = N_("Only readers signed in on the site may comment here.")


class SsoRejected(Unauthorized):
    """A sign-in token that kibitz will not accept (401, with a message naming why)."""


@dataclass(frozen=True)
class SsoUser:
    """The reader the embedding site signed in; ``sub`` is the site's own user id."""

    sub: str
    name: str
    email: str
    website: str | None = None


def _text(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and name == "sub":
        value = str(value)  # sites often use numeric user ids
    if not isinstance(value, str) or not value.strip():
        raise SsoRejected(BAD_CLAIMS)
    return value.strip()


def verify(token: object, secret: str | None) -> SsoUser:
    """The signed-in reader, or :class:`SsoRejected` saying what is wrong with the token."""
    if secret is None:
        raise SsoRejected(NOT_ENABLED)
    if not isinstance(token, str) or not token:
        raise SsoRejected(MALFORMED)
    if len(token.encode("utf-8", "replace")) > MAX_TOKEN:
        raise SsoRejected(TOO_LARGE)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise SsoRejected(MALFORMED) from None
    if header.get("alg") != ALGORITHM:
        raise SsoRejected(WRONG_ALGORITHM)
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            leeway=LEEWAY_SECONDS,
            options={"require": list(REQUIRED), "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise SsoRejected(EXPIRED) from None
    except jwt.MissingRequiredClaimError:
        raise SsoRejected(MISSING_CLAIM) from None
    except jwt.InvalidSignatureError:
        raise SsoRejected(BAD_SIGNATURE) from None
    except jwt.InvalidAlgorithmError:
        raise SsoRejected(WRONG_ALGORITHM) from None
    except jwt.DecodeError:
        raise SsoRejected(MALFORMED) from None
    except jwt.InvalidTokenError:  # iat in the future, a non-numeric exp, …
        raise SsoRejected(BAD_CLAIMS) from None
    sub = _text(claims, "sub")
    if len(sub) > MAX_SUB:
        raise SsoRejected(BAD_CLAIMS)
    website = claims.get("website")
    if website is not None and not isinstance(website, str):
        raise SsoRejected(BAD_CLAIMS)
    return SsoUser(
        sub=sub,
        name=_text(claims, "name"),
        email=_text(claims, "email"),
        website=website.strip() or None if isinstance(website, str) else None,
    )
