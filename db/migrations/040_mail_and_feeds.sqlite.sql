-- Outgoing mail lives in the database, so a down mail server or a restart delays mail and
-- loses none. `dedupe` names the notification (held:COMMENT:STAFF, reply:COMMENT:SUB, …): the
-- same one is queued once however often a listener runs. A sender claims a row by moving
-- `next_attempt` forward (a lease, with `lease_owner` naming the sender), so several
-- processes never send the same row at once.
CREATE TABLE mail_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe TEXT NOT NULL UNIQUE,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    headers TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL,
    next_attempt TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sent TEXT,
    failed TEXT,
    last_error TEXT,
    lease_owner TEXT
);

CREATE INDEX mail_queue_due ON mail_queue (next_attempt) WHERE sent IS NULL AND failed IS NULL;

-- One-time links from mails (approve / mark as spam): a nonce is spent here exactly once.
CREATE TABLE mail_links_used (
    nonce TEXT PRIMARY KEY,
    used TEXT NOT NULL
);

-- "Notify me of replies": one row per comment whose author asked; mail goes out only after
-- `confirmed` (double opt-in) and never after `unsubscribed`.
CREATE TABLE reply_subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    comment_id BIGINT NOT NULL UNIQUE REFERENCES comments (id),
    email TEXT NOT NULL,
    created TEXT NOT NULL,
    confirmed TEXT,
    unsubscribed TEXT
);

-- The feeds read the newest approved comments, of the site and of one thread: with status
-- leading, both engines walk the index backwards and stop after the limit, without a sort.
CREATE INDEX comments_by_status_created ON comments (status, created, id);
CREATE INDEX comments_by_thread_status_created ON comments (thread_id, status, created, id);
