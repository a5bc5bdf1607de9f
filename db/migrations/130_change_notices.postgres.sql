-- Every commit that changes what a kept answer was made from (a thread's version, its
-- aliases, a post) sends a notice on `kibitz_changes` (db/notices.py). Serving processes
-- LISTEN and give kept answers again without a read while none arrives. Statement-level
-- triggers, so one statement touching many rows sends one notice; PostgreSQL sends one per
-- transaction for identical notices, whichever process or command commits it.
--
-- A transaction that only adds comments sets `kibitz.adding` (db/comments.py) and sends
-- none: a notice makes PostgreSQL serialise the commits that send one, and new comments are
-- most commits. Kept answers then show another process's new comment within the trust bound
-- (`TRUST_FOR`, 50 ms); removals, edits, moderation, votes and everything else stay exact.
-- (On one line: the migrator splits statements at a semicolon that ends a line.)
CREATE FUNCTION kibitz_notify_change() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN IF current_setting('kibitz.adding', true) IS DISTINCT FROM 'on' THEN PERFORM pg_notify('kibitz_changes', ''); END IF; RETURN NULL; END $$;

CREATE TRIGGER threads_change_notice AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON threads
    FOR EACH STATEMENT EXECUTE FUNCTION kibitz_notify_change();
CREATE TRIGGER thread_aliases_change_notice
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON thread_aliases
    FOR EACH STATEMENT EXECUTE FUNCTION kibitz_notify_change();
CREATE TRIGGER posts_change_notice AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON posts
    FOR EACH STATEMENT EXECUTE FUNCTION kibitz_notify_change();
