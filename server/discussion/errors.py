"""What the domain refuses, in its own words: no HTTP here.

    DiscussionError             the root: a rule of the discussion says no
    ├── InvalidInput            a field breaks a rule; carries a message per field
    ├── NotAllowed              this page, person or window may not do that
    │   └── Closed              the thread takes no new comments
    ├── UnknownComment          there is no such comment (or none this asker may see)
    ├── Changed                 the comment changed since the asker saw it; nothing was done
    └── Limited                 too many attempts from one address; carries retry_after

The edges choose the answer: ``server.errors`` maps each to an HTTP status in one table, the
pages show the fields beside the form, the CLI prints the message.
"""

from __future__ import annotations

from collections.abc import Mapping

from server.i18n import N_


class DiscussionError(Exception):
    message = N_("You may not do that.")

    def __init__(self, message: str | None = None, fields: Mapping[str, str] | None = None) -> None:
        self.message = message or self.message
        self.fields = dict(fields or {})
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class InvalidInput(DiscussionError):
    message = N_("Some fields need attention.")


class NotAllowed(DiscussionError):
    message = N_("You may not do that.")


class Closed(NotAllowed):
    message = N_("Comments are closed on this page.")


class UnknownComment(DiscussionError):
    message = N_("Not found.")

    def __init__(self, comment_id: object) -> None:
        super().__init__(f"There is no comment {comment_id}.")
        self.comment_id = comment_id


class Changed(DiscussionError):
    """The comment was edited (or decided) after the asker read it: a moderator approving
    text they never saw, or two edits racing. Nothing was changed; read it again."""

    message = N_("This comment was edited after you saw it. Read it again, then decide.")


class Limited(DiscussionError):
    message = N_("Too many comments from your address. Please wait a little and try again.")

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
