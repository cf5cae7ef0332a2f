-- Issue 10, section 5: webhooks to tenants (Standard Webhooks), from a durable queue.

-- A tenant's endpoint. `secret` signs (a shared secret, so it is kept as is);
-- after a rotation `previous_secret` keeps signing too until `previous_secret_expires_at`.
-- `event_types` is the subscribed types, comma-separated.
CREATE TABLE webhook_endpoints (
    id                         TEXT PRIMARY KEY,
    tenant_id                  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url                        TEXT NOT NULL,
    description                TEXT,
    event_types                TEXT NOT NULL,
    enabled                    BIGINT NOT NULL DEFAULT 1,
    disabled_reason            TEXT,
    secret                     TEXT NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at BIGINT,
    consecutive_failures       BIGINT NOT NULL DEFAULT 0,
    failing_since              BIGINT,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL
);
-- Event ingestion asks, once per group commit, which of the group's tenants have an enabled endpoint.
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, id);

-- One event for one endpoint. `id` is the `webhook-id`, the same on every attempt.
-- A claim sets `claim_token` and moves `next_attempt_at` to the end of its lease.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    claim_token      TEXT,
    last_status_code BIGINT,
    last_error       TEXT,
    last_latency_ms  BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
