-- Big threads: pins, vote counts, closing, votes.
-- `up`/`down` are the comment's vote counts, kept in the vote's own transaction so that
-- sorting by score and showing counts never aggregate the votes table.
ALTER TABLE comments ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE comments ADD COLUMN up INTEGER NOT NULL DEFAULT 0;
ALTER TABLE comments ADD COLUMN down INTEGER NOT NULL DEFAULT 0;
-- `closed`: NULL = nobody decided (KIBITZ_CLOSE_AFTER_DAYS may close it), 1 = closed,
-- 0 = opened by staff (never closed automatically again).
-- `votes_seq` counts vote changes: with `last_seq` it names one exact state of what readers
-- see, counts included, so cached reads stay exact.
ALTER TABLE threads ADD COLUMN closed INTEGER;
ALTER TABLE threads ADD COLUMN votes_seq BIGINT NOT NULL DEFAULT 0;
-- One vote per voter and comment; `voter` is an opaque id (the signed anonymous id's random
-- part, or an SSO subject), never shown to anyone.
CREATE TABLE votes (
    comment_id BIGINT NOT NULL REFERENCES comments (id),
    voter TEXT NOT NULL,
    value INTEGER NOT NULL CHECK (value IN (-1, 1)),
    created TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (comment_id, voter)
);
-- Thread events carry comment_id 0 (no comment).
ALTER TABLE events DROP CONSTRAINT events_type_check;
ALTER TABLE events ADD CONSTRAINT events_type_check CHECK (type IN ('comment.created',
    'comment.approved', 'comment.updated', 'comment.deleted', 'thread.closed', 'thread.opened'));
