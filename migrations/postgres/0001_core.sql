-- mailroom core schema (PostgreSQL). Keep in step with migrations/sqlite/0001_core.sql:
-- same tables, same columns, same meaning. Ids are TEXT (UUID), times are epoch ms,
-- JSON is TEXT, booleans are derived from status columns.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    domain_name      TEXT,
    resend_domain_id TEXT,
    domain_status    TEXT,
    domain_records   TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT,
    prefix     TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE contacts (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email            TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    first_name       TEXT,
    last_name        TEXT,
    tags             TEXT NOT NULL DEFAULT '[]',
    attributes       TEXT NOT NULL DEFAULT '{}',
    status           TEXT NOT NULL DEFAULT 'subscribed',
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    CONSTRAINT contacts_tenant_email UNIQUE (tenant_id, email_normalized)
);
CREATE INDEX contacts_tenant_id ON contacts (tenant_id, id);

CREATE TABLE contact_tags (
    tenant_id  TEXT NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    tag        TEXT NOT NULL,
    PRIMARY KEY (contact_id, tag)
);
CREATE INDEX contact_tags_lookup ON contact_tags (tenant_id, tag, contact_id);

CREATE TABLE segments (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX segments_tenant ON segments (tenant_id, id);

CREATE TABLE segment_members (
    segment_id TEXT NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    added_at   BIGINT NOT NULL,
    PRIMARY KEY (segment_id, contact_id)
);
CREATE INDEX segment_members_contact ON segment_members (contact_id);

CREATE TABLE suppressions (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email_normalized TEXT NOT NULL,
    reason           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, email_normalized)
);

CREATE TABLE campaigns (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    subject         TEXT NOT NULL,
    html            TEXT NOT NULL,
    text_body       TEXT,
    from_address    TEXT NOT NULL,
    reply_to        TEXT,
    targeting       TEXT NOT NULL,
    recipient_count BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);
CREATE INDEX campaigns_tenant ON campaigns (tenant_id, created_at);

-- The outbox: one row per recipient. Campaign rows take their content from the
-- campaign; transactional rows (campaign_id NULL) carry their own.
CREATE TABLE messages (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    campaign_id  TEXT REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id   TEXT,
    to_email     TEXT NOT NULL,
    first_name   TEXT,
    priority     BIGINT NOT NULL,
    status       TEXT NOT NULL,
    due_at       BIGINT NOT NULL,
    batch_id     TEXT,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    provider_id  TEXT,
    from_address TEXT,
    subject      TEXT,
    html         TEXT,
    text_body    TEXT,
    reply_to     TEXT,
    tags         TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    -- At most one message per recipient per campaign, whatever retries happen.
    CONSTRAINT messages_once_per_recipient UNIQUE (campaign_id, contact_id)
);
CREATE INDEX messages_due ON messages (priority, due_at) WHERE status = 'queued';
CREATE INDEX messages_campaign ON messages (campaign_id, status, id);
CREATE INDEX messages_batch ON messages (batch_id);
CREATE INDEX messages_provider ON messages (provider_id);
CREATE INDEX messages_tenant ON messages (tenant_id);

-- A provider request, persisted with its idempotency key and exact body before
-- the call, so that a retry is byte-identical and the provider deduplicates it.
CREATE TABLE batches (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL UNIQUE,
    single          BIGINT NOT NULL,
    payload         TEXT,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    due_at          BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX batches_due ON batches (due_at) WHERE status = 'pending';

CREATE TABLE webhook_events (
    svix_id           TEXT PRIMARY KEY,
    event_type        TEXT NOT NULL,
    provider_email_id TEXT,
    message_id        TEXT,
    tenant_id         TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    payload           TEXT NOT NULL,
    received_at       BIGINT NOT NULL
);
CREATE INDEX webhook_events_message ON webhook_events (message_id);

CREATE TABLE idempotency_keys (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    response_status BIGINT,
    response_body   TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
