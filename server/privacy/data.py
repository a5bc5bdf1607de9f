"""What both the commenter's link page and the admin do with one address's data.

The download is everything kibitz keeps about those comments, private fields included: it
goes only to the address's owner (through the mailed link) or to staff. Erasure is audited
with the number of comments, never with the address it erased.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.responses import Response

from db.models import StaffMember, now
from db.privacy import OwnComment, PrivacyStore
from server.discussion.shapes import iso
from server.state import State

log = logging.getLogger("kibitz.privacy")

SELF_SERVICE = "commenter (own request)"  # who the audit log names for a commenter's erasure


async def comments_of(state: State, email: str) -> list[OwnComment]:
    return await PrivacyStore(state.db).comments_of(email)


def own_data(email: str, found: list[OwnComment]) -> dict[str, Any]:
    return {
        "email": email,
        "exported": iso(now()),
        "comments": [
            {
                "id": item.comment.id,
                "uri": item.uri,
                "parent": item.comment.parent_id,
                "author": item.comment.author,
                "email": item.comment.email,
                "website": item.comment.website,
                "address": item.comment.address,
                "text": item.comment.text,
                "html": item.comment.html,
                "status": item.comment.status,
                "created": iso(item.comment.created),
                "edited": iso(item.comment.edited),
                "verified": item.comment.verified,
            }
            for item in found
        ],
    }


async def download(state: State, email: str) -> Response:
    body = own_data(email, await comments_of(state, email))
    return Response(
        json.dumps(body, ensure_ascii=False, indent=2).encode(),
        media_type="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="my-comments.json"',
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


async def erase(state: State, email: str, staff: StaffMember | None) -> int:
    """Erase the address's comments (readers get the events) and audit it without the address."""
    erasure = await state.discussion.erase_commenter(email)
    count = erasure.count
    by = staff.name if staff else SELF_SERVICE
    # Open moderation queues drop the held ones, as when staff delete a comment.
    for comment in (await state.comments.by_ids(erasure.was_pending)).values():
        try:
            await state.live.on_moderated(comment, comment, by)
        except Exception:  # the erasure is committed; a queue that missed it reloads
            log.exception("could not tell open queues about erased comment %d", comment.id)
    await state.audit.record(
        staff.id if staff else None,
        by,
        "erase",
        f"{count} comments",
        "at the commenter's request" if staff is None else "for a written request",
    )
    return count
