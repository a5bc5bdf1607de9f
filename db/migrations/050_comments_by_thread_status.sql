-- Counting a thread's approved comments (counts, the post index) must read only that thread's
-- rows. Without this index SQLite's planner picks comments_by_status and walks every approved
-- comment of the site for each thread asked about.
CREATE INDEX comments_by_thread_status ON comments (thread_id, status);
