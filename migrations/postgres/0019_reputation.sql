-- Issue 10, section 4: the reputation guard. Keep in step with sqlite/0019.

-- A tenant's reputation state (no row: `ok`). `paused` holds its campaign mail
-- until an admin resumes it. After a resume only what happens afterwards
-- counts: hour buckets of `tenant_stats` before `baseline_bucket` are ignored,
-- and in that bucket only what exceeds the `baseline_*` snapshot taken then.
CREATE TABLE tenant_reputation (
    tenant_id           TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    state               TEXT NOT NULL,
    changed_at          BIGINT NOT NULL,
    baseline_at         BIGINT,
    baseline_bucket     BIGINT,
    baseline_sent       BIGINT NOT NULL DEFAULT 0,
    baseline_delivered  BIGINT NOT NULL DEFAULT 0,
    baseline_bounced    BIGINT NOT NULL DEFAULT 0,
    baseline_complained BIGINT NOT NULL DEFAULT 0
);

-- Every state change, with who made it (`system` or `admin`) and the figures then.
CREATE TABLE reputation_changes (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    actor       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    sent        BIGINT NOT NULL,
    delivered   BIGINT NOT NULL,
    bounced     BIGINT NOT NULL,
    complained  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Alerts to the operator (MAILROOM_ALERT_WEBHOOK_URL) travel through the same
-- durable delivery queue as webhooks to tenants, as deliveries without an endpoint.
ALTER TABLE webhook_deliveries ALTER COLUMN endpoint_id DROP NOT NULL;
