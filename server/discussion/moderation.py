"""The moderation actions and the status each one leaves a comment in: the one copy.

Every route that moderates (JSON API, admin pages and their script, mail links) and the audit
log name actions with :class:`Action`; statuses are :class:`db.models.Status`. The admin script
and the widget get both from the server (a data attribute, the assembled bundle), never a copy.
"""

from __future__ import annotations

from enum import StrEnum

from db.models import Status


class Action(StrEnum):
    """What a moderator does to a comment; ``restore`` takes spam or deleted back to approved."""

    APPROVE = "approve"
    SPAM = "spam"
    DELETE = "delete"
    RESTORE = "restore"

    @property
    def target(self) -> Status:
        """The status the comment has afterwards."""
        return _TARGETS[self]

    @property
    def api(self) -> Action:
        """The JSON API's name for it (``POST /api/comments/{id}/{action}``)."""
        return Action.APPROVE if self is Action.RESTORE else self

    @classmethod
    def of_change(cls, old: str, new: str) -> str:
        """The verb the audit log records for a change of status ``old`` → ``new``."""
        if new == Status.APPROVED:
            return cls.RESTORE if old in (Status.SPAM, Status.DELETED) else cls.APPROVE
        for action in (cls.SPAM, cls.DELETE):
            if action.target == new:
                return action
        return new


_TARGETS = {
    Action.APPROVE: Status.APPROVED,
    Action.SPAM: Status.SPAM,
    Action.DELETE: Status.DELETED,
    Action.RESTORE: Status.APPROVED,
}

# What ``POST /api/comments/{id}/{action}`` accepts (the contract's three).
API_ACTIONS = (Action.APPROVE, Action.SPAM, Action.DELETE)
# The two links a held-comment mail carries.
MAIL_ACTIONS = (Action.APPROVE, Action.SPAM)
# What the admin lists offer for the comments they show.
LIST_ACTIONS = {
    Status.PENDING: (Action.APPROVE, Action.SPAM, Action.DELETE),
    Status.APPROVED: (Action.SPAM, Action.DELETE),
    Status.SPAM: (Action.RESTORE, Action.DELETE),
    Status.DELETED: (Action.RESTORE,),
}


def parse_action(value: object, allowed: tuple[Action, ...] = tuple(Action)) -> Action | None:
    """The action named by ``value`` if it is one of ``allowed``, else None."""
    if isinstance(value, str) and value in allowed:
        return Action(value)
    return None
