-- When a thread's `closed` was last decided (see the .postgres.sql twin for the why).
ALTER TABLE threads ADD COLUMN closed_at TEXT;
UPDATE threads SET closed_at = (SELECT MAX(e.created) FROM events e
    WHERE e.thread_id = threads.id AND e.type IN ('thread.closed', 'thread.opened'))
    WHERE closed IS NOT NULL;
