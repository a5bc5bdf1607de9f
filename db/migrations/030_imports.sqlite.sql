-- Import runs: every row an import writes carries its run, so a run that fails half-way
-- (or whose process was killed) can be removed completely, batch boundaries or not.
CREATE TABLE import_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    format TEXT NOT NULL,
    file TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    outcome TEXT NOT NULL DEFAULT 'running' CHECK (outcome IN ('running', 'done', 'undone'))
);

ALTER TABLE threads ADD COLUMN import_run BIGINT;
ALTER TABLE thread_aliases ADD COLUMN import_run BIGINT;
ALTER TABLE posts ADD COLUMN import_run BIGINT;
ALTER TABLE comments ADD COLUMN import_run BIGINT;

CREATE INDEX comments_by_import_run ON comments (import_run) WHERE import_run IS NOT NULL;
