-- A comment's version grows with every change of its text, so a moderator's approval can say
-- which text it approves: an approval of a version that is no longer current is refused.
ALTER TABLE comments ADD COLUMN version INTEGER NOT NULL DEFAULT 1;

-- A title a commenter sent with the comment that created a thread is kept here, unshown, until
-- that comment is approved (proposed_by is its id); feeds and mail subjects read only `title`.
ALTER TABLE threads ADD COLUMN proposed_title TEXT;
ALTER TABLE threads ADD COLUMN proposed_by BIGINT;
