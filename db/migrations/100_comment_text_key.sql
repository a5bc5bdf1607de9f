-- The duplicate check on every POST asks whether the same text was posted on the thread
-- recently. Comparing texts walked every comment of the thread posted in the window, so a
-- busy thread made each POST slower; a short digest of the trimmed text, indexed with the
-- thread, finds a duplicate in one probe. Older rows keep NULL: they are past any window.
ALTER TABLE comments ADD COLUMN text_key TEXT;
CREATE INDEX comments_by_thread_text_key ON comments (thread_id, text_key, created);
