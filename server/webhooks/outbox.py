"""Turning comment changes into queued webhook messages, inside the writing transaction.

Each event gets two bodies: readers' shape ``C`` (``public_comment``: a held, spam or
deleted comment is an empty placeholder, no text, author, e-mail or address) for ordinary
endpoints, and staff's shape ``S`` for endpoints marked private. The body is fixed here, at
commit time, so a retry a day later sends what happened then, not what the comment is now.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from db.comments import Change
from db.database import Connection
from db.models import now
from db.webhooks import QueuedEvent, enqueue
from server.discussion.shapes import iso, public_comment, staff_comment


def message_id() -> str:
    """A ``webhook-id``: unique per message, kept across retries."""
    return "msg_" + secrets.token_urlsafe(18)


def body(kind: str, data: dict[str, Any]) -> str:
    return json.dumps(
        {"type": kind, "timestamp": iso(now()), "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def queued(change: Change) -> QueuedEvent:
    comment = change.comment
    return QueuedEvent(
        type=change.type,
        thread_id=comment.thread_id,
        message_id=message_id(),
        public_body=body(change.type, {"comment": public_comment(comment), "uri": change.uri}),
        private_body=body(
            change.type, {"comment": staff_comment(comment, change.uri), "uri": change.uri}
        ),
    )


async def write_closed(conn: Connection, thread_id: int, uri: str) -> None:
    """The thread store's writer: ``thread.closed`` (the same body for every endpoint)."""
    message = body("thread.closed", {"uri": uri})
    await enqueue(conn, [QueuedEvent("thread.closed", thread_id, message_id(), message, message)])


async def write(conn: Connection, changes: list[Change]) -> int:
    """The comment store's outbox writer for webhooks: how many deliveries it queued."""
    return await enqueue(conn, [queued(c) for c in changes])
