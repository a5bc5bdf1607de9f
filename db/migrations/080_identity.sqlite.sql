-- Identity (issue 14): comments signed in by the host site carry the site's user id (sso_sub);
-- moderation counts such a commenter by it, and bans may name it.
ALTER TABLE comments ADD COLUMN sso_sub TEXT;

CREATE INDEX comments_approved_sub ON comments (sso_sub)
    WHERE status = 'approved' AND sso_sub IS NOT NULL;

-- A commenter's own data is looked up by e-mail address in every status.
CREATE INDEX comments_by_email ON comments (lower(email));

-- Bans are read from here on every comment, so a ban made on one process holds on every other
-- at once. name_key is the look-alike skeleton of name (server.discussion.lookalikes);
-- net_low/net_high are the first and last address of the banned network as 32 hex digits of
-- its IPv6 form (IPv4 mapped), so both engines find a covering network with a text range.
CREATE TABLE bans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT,
    address TEXT,
    sub TEXT,
    name TEXT,
    name_key TEXT,
    net_low TEXT,
    net_high TEXT,
    reason TEXT NOT NULL DEFAULT '',
    expires TEXT,
    created TEXT NOT NULL,
    staff_id BIGINT REFERENCES staff (id) ON DELETE SET NULL,
    staff_name TEXT NOT NULL
);

CREATE INDEX bans_by_expiry ON bans (expires);
CREATE INDEX bans_by_email ON bans (email) WHERE email IS NOT NULL;
CREATE INDEX bans_by_sub ON bans (sub) WHERE sub IS NOT NULL;
CREATE INDEX bans_by_name ON bans (name_key) WHERE name_key IS NOT NULL;
CREATE INDEX bans_by_network ON bans (net_low, net_high) WHERE net_low IS NOT NULL;
