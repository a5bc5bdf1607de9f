-- When a thread's `closed` was last decided (closed by staff or KIBITZ_CLOSE_AFTER_DAYS,
-- reopened by staff), so an export carries it and a moved site keeps it. Threads decided
-- before this column existed take the time of their latest closed/opened event, where the
-- events are still kept; otherwise NULL (not known).
ALTER TABLE threads ADD COLUMN closed_at TIMESTAMPTZ;
UPDATE threads SET closed_at = (SELECT MAX(e.created) FROM events e
    WHERE e.thread_id = threads.id AND e.type IN ('thread.closed', 'thread.opened'))
    WHERE closed IS NOT NULL;
