"""The webhook events, declared once: the API validates against this table, the admin lists
it, and the docs describe it.

An event is sent only when something emits it: the comment events come from the comment
store's outbox, ``thread.closed`` from the thread store's (both :mod:`server.webhooks.outbox`,
written in the transaction that made the change).
"""

from __future__ import annotations

from server.i18n import N_

EVENTS: dict[str, str] = {
    "comment.created": N_("a comment was published at once"),
    "comment.pending": N_("a comment was held for moderation"),
    "comment.approved": N_("a held, spam or deleted comment became visible"),
    "comment.updated": N_("a comment's text was edited"),
    "comment.deleted": N_("a comment was deleted"),
    "comment.spam": N_("a comment was marked as spam"),
    "thread.closed": N_("a thread was closed to new comments"),
}

# Sent by the admin's "send test event" button to one endpoint, whatever it lists.
TEST_EVENT = "webhook.test"
