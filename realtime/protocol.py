"""The live channel's messages: their JSON shapes, their encodings, and no I/O.

Every message a reader receives is built here, once per event, and the same bytes go to
every reader (and through Redis to every process). Comments are shaped only by
:func:`server.discussion.shapes.public_comment`, so nothing private (e-mail, address,
reason, text of a held comment) can reach ``/ws``: a comment that is not visible any more
when its event is shaped goes out as the contract's empty placeholder.

Two encodings live here besides JSON:

* the broker's wire format, ``b"<seq> <json>"`` for an event and ``b"p<process id>"`` for
  "presence changed in that process", so a receiver learns the seq without parsing JSON;
* a pre-built server-to-client WebSocket text frame (RFC 6455 section 5.2). With
  compression off and no masking (servers never mask), the frame is the same bytes for every
  connection, so it is built once and written to each socket as it is.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from db.comments import FULL, PLACEHOLDER
from db.models import Comment, Event, Status
from server.discussion.shapes import public_comment

# Close codes. 4000 tells the client that it fell behind and should reconnect with ``since``.
RESUME = 4000
SERVICE_RESTART = 1012  # the server is restarting: reconnect (elsewhere) with since
POLICY_VIOLATION = 1008
# 4003: the staff credentials behind a moderation connection were revoked (account disabled,
# token revoked, logged out). The client must not reconnect with the same credentials.
REVOKED = 4003

EVENT_TYPES = (
    "comment.created",
    "comment.approved",
    "comment.updated",
    "comment.deleted",
    "thread.closed",
    "thread.opened",
)
THREAD_EVENTS = ("thread.closed", "thread.opened")


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def hello(uri: str, cursor: int, online: int) -> bytes:
    return encode({"type": "hello", "uri": uri, "cursor": cursor, "online": online})


RESET = encode({"type": "reset"})


def presence(online: int) -> bytes:
    return encode({"type": "presence", "online": online})


def comment_event(event: Event, comment: Comment | None) -> bytes:
    """One stored event as readers see it, with the comment in its *current* state.

    An approved comment is shown in full (:func:`db.comments.visible_states` gives every
    approved comment ``full``). A created, approved or updated event whose comment is no
    longer approved is sent as a placeholder: either the comment now keeps a reply's place,
    or it has gone and the later ``comment.deleted`` event removes it.
    Thread events (closed, opened) carry no comment.
    """
    if event.type in THREAD_EVENTS:
        return encode({"type": event.type, "seq": event.seq})
    if event.type == "comment.deleted" or comment is None:
        return encode({"type": "comment.deleted", "seq": event.seq, "id": event.comment_id})
    shaped = public_comment(comment, FULL if comment.status == Status.APPROVED else PLACEHOLDER)
    return encode({"type": event.type, "seq": event.seq, "comment": shaped})


def votes(counts: dict[int, tuple[int, int]]) -> bytes:
    """Changed vote counts of a thread's comments: not stored, no seq (like presence)."""
    return encode({"type": "votes", "votes": {str(k): list(v) for k, v in counts.items()}})


def comment_pending(staff_shaped: dict[str, Any]) -> bytes:
    return encode({"type": "comment.pending", "comment": staff_shaped})


def comment_moderated(comment_id: int, status: str, by: str) -> bytes:
    return encode({"type": "comment.moderated", "id": comment_id, "status": status, "by": by})


# -- the broker's wire format ------------------------------------------------------------------


def staff_recheck(staff_id: int) -> bytes:
    """On the moderation channel: "re-check the credentials of staff member N's sockets now".

    Sent when an account is disabled, a token revoked or a session ended, so every process
    cuts that member's moderation sockets at once instead of at its next timed re-check. It
    starts with ``!``, never with ``{``, so it cannot be mistaken for a message to staff.
    """
    return b"!recheck %d" % staff_id


def unpack_staff_recheck(data: bytes) -> int | None:
    """The staff id of a :func:`staff_recheck` notice; ``None`` for a message to staff."""
    if not data.startswith(b"!recheck "):
        return None
    try:
        return int(data[9:])
    except ValueError:
        return None


def presence_notice(process_id: str) -> bytes:
    return b"p" + process_id.encode()


def votes_notice(comment_ids: list[int]) -> bytes:
    """ "These comments' votes changed": ``b"v1,2,3"``; each process reads the counts itself."""
    return b"v" + ",".join(str(i) for i in comment_ids).encode()


def unpack_votes(data: bytes) -> list[int] | None:
    """The comment ids of a votes notice, or None when ``data`` is something else."""
    if data[:1] != b"v":
        return None
    try:
        return [int(x) for x in data[1:].split(b",") if x]
    except ValueError:
        return []


def pack_event(seq: int, payload: bytes) -> bytes:
    return b"%d %s" % (seq, payload)


def unpack(data: bytes) -> tuple[int, bytes] | None:
    """``(seq, payload)`` for an event; ``None`` for a presence or votes notice."""
    if data[:1] in (b"p", b"v"):
        return None
    seq, _, payload = data.partition(b" ")
    return int(seq), payload


# -- pre-built WebSocket frames ----------------------------------------------------------------


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final, uncompressed text frame carrying ``payload``."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


class Frame:
    """One outgoing message: its JSON bytes, its seq (events only), its wire frame.

    The wire frame and the ``str`` form are built on first use and then shared by every
    connection, whichever transport it uses.
    """

    __slots__ = ("_text", "_wire", "payload", "seq")

    def __init__(self, payload: bytes, seq: int | None = None) -> None:
        self.payload = payload
        self.seq = seq
        self._wire: bytes | None = None
        self._text: str | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = text_frame(self.payload)
        return self._wire

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.payload.decode()
        return self._text

    def __repr__(self) -> str:
        return f"Frame(seq={self.seq}, {self.payload[:60]!r})"
