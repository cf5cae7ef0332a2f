-- Issue 10, section 4: the reputation guard. Keep in step with postgres/0019.

-- A tenant's reputation state (no row: `ok`). `paused` holds its campaign mail
-- until an admin resumes it. After a resume only what happens afterwards
-- counts: hour buckets of `tenant_stats` before `baseline_bucket` are ignored,
-- and in that bucket only what exceeds the `baseline_*` snapshot taken then.
CREATE TABLE tenant_reputation (
    tenant_id           TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    state               TEXT NOT NULL,
    changed_at          INTEGER NOT NULL,
    baseline_at         INTEGER,
    baseline_bucket     INTEGER,
    baseline_sent       INTEGER NOT NULL DEFAULT 0,
    baseline_delivered  INTEGER NOT NULL DEFAULT 0,
    baseline_bounced    INTEGER NOT NULL DEFAULT 0,
    baseline_complained INTEGER NOT NULL DEFAULT 0
);

-- Every state change, with who made it (`system` or `admin`) and the figures then.
CREATE TABLE reputation_changes (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    actor       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    sent        INTEGER NOT NULL,
    delivered   INTEGER NOT NULL,
    bounced     INTEGER NOT NULL,
    complained  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Alerts to the operator (MAILROOM_ALERT_WEBHOOK_URL) travel through the same
-- durable delivery queue as webhooks to tenants, as deliveries without an
-- endpoint. SQLite cannot drop NOT NULL in place: the table is rebuilt.
CREATE TABLE webhook_deliveries_new (
    id               TEXT PRIMARY KEY,
    endpoint_id      TEXT REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
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
INSERT INTO webhook_deliveries_new (id, endpoint_id, tenant_id, event_type, payload, status, attempts, next_attempt_at,
    claim_token, last_status_code, last_error, last_latency_ms, created_at, updated_at)
SELECT id, endpoint_id, tenant_id, event_type, payload, status, attempts, next_attempt_at,
    claim_token, last_status_code, last_error, last_latency_ms, created_at, updated_at FROM webhook_deliveries;
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_new RENAME TO webhook_deliveries;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
