-- Big threads: pins, vote counts, closing, votes (see the .postgres.sql twin for the why).
ALTER TABLE comments ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE comments ADD COLUMN up INTEGER NOT NULL DEFAULT 0;
ALTER TABLE comments ADD COLUMN down INTEGER NOT NULL DEFAULT 0;
ALTER TABLE threads ADD COLUMN closed INTEGER;
ALTER TABLE threads ADD COLUMN votes_seq BIGINT NOT NULL DEFAULT 0;
CREATE TABLE votes (
    comment_id BIGINT NOT NULL REFERENCES comments (id),
    voter TEXT NOT NULL,
    value INTEGER NOT NULL CHECK (value IN (-1, 1)),
    created TEXT NOT NULL,
    PRIMARY KEY (comment_id, voter)
);
-- SQLite cannot change a CHECK constraint in place: rebuild the events table.
CREATE TABLE events_new (
    thread_id BIGINT NOT NULL REFERENCES threads (id),
    seq BIGINT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('comment.created', 'comment.approved',
        'comment.updated', 'comment.deleted', 'thread.closed', 'thread.opened')),
    comment_id BIGINT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (thread_id, seq)
);
INSERT INTO events_new (thread_id, seq, type, comment_id, created)
    SELECT thread_id, seq, type, comment_id, created FROM events;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE INDEX events_by_age ON events (created);
