-- Threads are keyed by their normalised path; last_seq is the per-thread event counter,
-- bumped inside the writing transaction so seq order is commit order within a thread.
CREATE TABLE threads (
    id BIGSERIAL PRIMARY KEY,
    uri TEXT NOT NULL UNIQUE,
    title TEXT,
    last_seq BIGINT NOT NULL DEFAULT 0,
    created TIMESTAMPTZ NOT NULL
);

CREATE TABLE thread_aliases (
    uri TEXT PRIMARY KEY,
    thread_id BIGINT NOT NULL REFERENCES threads (id) ON DELETE CASCADE
);

CREATE TABLE staff (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    email TEXT,
    role TEXT NOT NULL CHECK (role IN ('admin', 'moderator')),
    password_hash TEXT NOT NULL,
    created TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    staff_id BIGINT NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created TIMESTAMPTZ NOT NULL,
    last_used TIMESTAMPTZ,
    revoked TIMESTAMPTZ
);

CREATE TABLE posts (
    id BIGSERIAL PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    author TEXT NOT NULL,
    body_html TEXT NOT NULL,
    categories TEXT NOT NULL DEFAULT '[]',
    language TEXT,
    published TIMESTAMPTZ NOT NULL,
    thread_id BIGINT NOT NULL UNIQUE REFERENCES threads (id),
    source TEXT UNIQUE
);

CREATE TABLE comments (
    id BIGSERIAL PRIMARY KEY,
    thread_id BIGINT NOT NULL REFERENCES threads (id),
    parent_id BIGINT REFERENCES comments (id),
    author TEXT NOT NULL,
    email TEXT NOT NULL DEFAULT '',
    website TEXT,
    text TEXT NOT NULL,
    html TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('approved', 'pending', 'spam', 'deleted')),
    reason TEXT,
    address TEXT,
    staff_id BIGINT REFERENCES staff (id),
    created TIMESTAMPTZ NOT NULL,
    edited TIMESTAMPTZ,
    source TEXT UNIQUE
);

CREATE INDEX comments_by_thread ON comments (thread_id, id);
CREATE INDEX comments_by_status ON comments (status, id);
CREATE INDEX comments_by_parent ON comments (parent_id);
CREATE INDEX comments_approved_email ON comments (lower(email)) WHERE status = 'approved';
CREATE INDEX comments_with_address ON comments (created) WHERE address IS NOT NULL;

-- The outbox: one row per change readers must see, written in the same transaction.
CREATE TABLE events (
    thread_id BIGINT NOT NULL REFERENCES threads (id),
    seq BIGINT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('comment.created', 'comment.approved',
                                       'comment.updated', 'comment.deleted')),
    comment_id BIGINT NOT NULL,
    created TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (thread_id, seq)
);

CREATE INDEX events_by_age ON events (created);
