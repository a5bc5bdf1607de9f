-- Idempotent submissions (CONTRACT.md, "Submissions are idempotent"). A row is written in the
-- transaction that stores the comment, so a key is taken exactly when its comment exists, even
-- if the process dies between the commit and the answer. `key` is the client's
-- Idempotency-Key, or "form:" and the form's one-use submission token; `body_hash` tells a
-- retry (same body) from a misuse (409); `status` is the first answer's HTTP status. Rows
-- older than 24 h are pruned and may be taken again.
CREATE TABLE submissions (
    key TEXT PRIMARY KEY,
    body_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    comment_id BIGINT,
    created TIMESTAMPTZ NOT NULL
);

CREATE INDEX submissions_by_age ON submissions (created);
