-- Webhook endpoints, managed by staff. `events` lists the event types the endpoint wants,
-- comma-separated and comma-framed (",comment.created,comment.pending,") so one LIKE picks
-- the endpoints of a type. `secret` is the Standard Webhooks key ("whsec_" + base64): it must
-- be kept to sign, so it is stored as given and never shown again. A deleted endpoint keeps
-- its row (`deleted`) so its delivery history stays readable; nothing new is queued for it.
CREATE TABLE webhook_endpoints (
    id BIGSERIAL PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    private INTEGER NOT NULL DEFAULT 0 CHECK (private IN (0, 1)),
    secret TEXT NOT NULL,
    created TIMESTAMPTZ NOT NULL,
    deleted TIMESTAMPTZ
);

-- One row per event per endpoint, written in the transaction that made the change (an
-- outbox), so a crash loses none. `message_id` is the `webhook-id`: fixed when queued, so a
-- retry is recognisably the same message. Rows of one endpoint and thread go out strictly in
-- `id` order (the writing transaction holds the thread's row lock, so ids of one thread are
-- in commit order); a worker claims a row by moving `next_attempt` past now (a lease).
CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    endpoint_id BIGINT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    thread_id BIGINT,
    message_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    created TIMESTAMPTZ NOT NULL,
    next_attempt TIMESTAMPTZ NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    delivered TIMESTAMPTZ,
    failed TIMESTAMPTZ,
    last_error TEXT,
    lease_owner TEXT
);

CREATE INDEX webhook_deliveries_open ON webhook_deliveries (endpoint_id, thread_id, id)
    WHERE delivered IS NULL AND failed IS NULL;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt)
    WHERE delivered IS NULL AND failed IS NULL;
