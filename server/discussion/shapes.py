"""The JSON shapes of the contract, built in one place so nothing private slips out.

``public_comment`` is the only way a comment reaches a reader (pages, JSON, feeds, live
events). It never reads ``email``, ``address``, ``reason`` or ``text``; a placeholder carries
no author, text or website at all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from db.comments import FULL, PLACEHOLDER
from db.models import Comment, Status

# Plain strings for per-comment checks: a Status member lookup costs ~0.2 µs on Python 3.11.
APPROVED, DELETED = Status.APPROVED.value, Status.DELETED.value


def iso(value: datetime | None) -> str | None:
    """``0999-01-02T03:04:05Z``: ``isoformat`` pads the year, ``strftime("%Y")`` does not."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def public_comment(comment: Comment, state: str = FULL) -> dict[str, Any]:
    if state == PLACEHOLDER or comment.status != APPROVED:
        return {
            "id": comment.id,
            "parent": comment.parent_id,
            "author": "",
            "website": None,
            "html": "",
            "created": iso(comment.created),
            "edited": None,
            "status": DELETED,
            "staff": False,
            "up": 0,
            "down": 0,
            "pinned": False,
            "verified": False,
        }
    return {
        "id": comment.id,
        "parent": comment.parent_id,
        "author": comment.author,
        "website": comment.website,
        "html": comment.html,
        "created": iso(comment.created),
        "edited": iso(comment.edited),
        "status": APPROVED,
        "staff": comment.staff,
        "up": comment.up,
        "down": comment.down,
        "pinned": comment.pinned,
        "verified": comment.verified,
    }


def own_comment(comment: Comment) -> dict[str, Any]:
    """What the commenter who just wrote or edited a comment sees of it, held or not.

    They typed it, so they see their text even while it awaits moderation; still never the
    e-mail, address or the reason it was held. A comment kept as spam (a banned commenter's)
    reads as ``pending``: the answer must not tell a ban from ordinary moderation.
    """
    if comment.status == APPROVED:
        return public_comment(comment)
    return {
        **public_comment(comment),
        "author": comment.author,
        "website": comment.website,
        "html": comment.html,
        "edited": iso(comment.edited),
        "status": "pending" if comment.status == "spam" else comment.status,
        "staff": comment.staff,
        "verified": comment.verified,
    }


def staff_comment(comment: Comment, uri: str | None = None) -> dict[str, Any]:
    """The contract's ``S``: what staff see in the queue, private fields included."""
    shaped = (
        public_comment(comment)
        if comment.status == APPROVED
        else {
            **public_comment(comment),
            "author": comment.author,
            "website": comment.website,
            "html": comment.html,
            "edited": iso(comment.edited),
            "staff": comment.staff,
            "verified": comment.verified,
        }
    )
    shaped.update(
        status=comment.status,
        email=comment.email,
        address=comment.address,
        reason=comment.reason,
        text=comment.text,
        thread_id=comment.thread_id,
        version=comment.version,
        sub=comment.sso_sub,  # the site's user id of a signed-in reader (to ban by it)
    )
    if uri is not None:
        shaped["uri"] = uri
    return shaped
