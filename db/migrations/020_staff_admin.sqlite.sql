-- Staff sessions live server-side so that logout and expiry are real: the cookie holds a
-- random token, the table only its SHA-256 hash.
CREATE TABLE staff_sessions (
    token_hash TEXT PRIMARY KEY,
    staff_id BIGINT NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    created TEXT NOT NULL,
    expires TEXT NOT NULL,
    address TEXT
);

CREATE INDEX staff_sessions_by_expiry ON staff_sessions (expires);

-- Every staff action: who, what, when. The name is copied so the record outlives the account.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    staff_id BIGINT REFERENCES staff (id) ON DELETE SET NULL,
    staff_name TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT,
    created TEXT NOT NULL
);

CREATE INDEX audit_log_by_id ON audit_log (id);

-- Accounts are disabled, never deleted: their comments and audit rows keep pointing at them.
ALTER TABLE staff ADD COLUMN disabled TEXT;

ALTER TABLE api_tokens ADD COLUMN label TEXT;

-- Duplicate detection looks up the same text on a thread within minutes.
CREATE INDEX comments_by_thread_created ON comments (thread_id, created);
