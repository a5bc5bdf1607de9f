"""Idempotent submissions at the edges: the ``Idempotency-Key`` header and the form's token.

A client that sends a comment and loses the answer (a cut connection, a timeout, a double
click) sends it again under the same key; it gets the first answer again and nothing new is
stored (CONTRACT.md, "Submissions are idempotent"). The key is stored with the comment in
one transaction (:func:`db.comments.claim_submission`), so even a crash between the commit
and the answer cannot let a retry create a second comment. Two requests with one key at the
same moment: the second waits for the first's transaction and then answers as a retry.
"""

from __future__ import annotations

import hashlib
import json

from starlette.requests import Request

from db.comments import Submission, Submitted
from server.errors import BadRequest, Conflicting
from server.i18n import N_
from server.state import State

HEADER = "Idempotency-Key"
MAX_KEY = 200
FORM_PREFIX = "form:"


def valid_key(key: str) -> bool:
    """1 to 200 printable ASCII characters (space to tilde)."""
    return 0 < len(key) <= MAX_KEY and all(" " <= ch <= "~" for ch in key)


def header_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key``, or ``None``; a malformed one is a 400."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not valid_key(key):
        raise BadRequest(
            N_("The Idempotency-Key header must be 1 to 200 printable ASCII characters."),
            fields={HEADER: N_("1 to 200 printable ASCII characters.")},
        )
    return key


def body_hash(body: object) -> str:
    """The same body, however its keys are ordered or spaced, hashes the same."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def form_key(token: str, post_id: int) -> str | None:
    """The stored key of a form's token (unique per rendering); ``None`` when it has none.

    Scoped to the post it is sent to: a token sent to another post (held for that, see
    :func:`server.http.pages.form_check`) does not use up the form on its own post.
    """
    token = token.strip()
    key = f"{FORM_PREFIX}{post_id}:{token}"
    return key if token and valid_key(key) else None


async def earlier(state: State, submission: Submission) -> Submitted | None:
    """The earlier submission under this key, or ``None``; another body under it is a 409."""
    found = await state.comments.submitted(submission.key)
    if found is not None and found.body_hash != submission.body_hash:
        raise Conflicting(
            N_("This Idempotency-Key was used for a different comment."),
            fields={HEADER: N_("Use a new key for a new comment.")},
        )
    return found
