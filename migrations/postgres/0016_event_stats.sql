-- Issue 10 (1, 2): every Resend event queryable, soft bounces, maintained analytics.
-- Keep in step with sqlite/0016.

-- What the event listing and the soft-bounce count read, filled by the same
-- single INSERT that stores the event. `occurred_at` is the event's own time
-- (the payload's `created_at`), else when it was received.
ALTER TABLE webhook_events ADD COLUMN campaign_id TEXT;
ALTER TABLE webhook_events ADD COLUMN contact_id TEXT;
ALTER TABLE webhook_events ADD COLUMN link TEXT;
ALTER TABLE webhook_events ADD COLUMN bounce_type TEXT;
ALTER TABLE webhook_events ADD COLUMN occurred_at BIGINT;
UPDATE webhook_events SET occurred_at = received_at;
UPDATE webhook_events SET campaign_id = (SELECT m.campaign_id FROM messages m WHERE m.id = webhook_events.message_id),
    contact_id = (SELECT m.contact_id FROM messages m WHERE m.id = webhook_events.message_id)
WHERE message_id IS NOT NULL;
-- A tenant's events newest first (the listing), and one campaign's.
CREATE INDEX webhook_events_tenant_time ON webhook_events (tenant_id, occurred_at, svix_id);
CREATE INDEX webhook_events_campaign_time ON webhook_events (campaign_id, occurred_at, svix_id) WHERE campaign_id IS NOT NULL;
-- Transient bounces per contact in a window: a small index of just those.
CREATE INDEX webhook_events_soft_bounces ON webhook_events (tenant_id, contact_id, occurred_at) WHERE bounce_type = 'Transient';

-- The time of the domain event that last set a tenant's domain status, so a
-- late, older event does not undo a newer one.
ALTER TABLE tenants ADD COLUMN domain_event_at BIGINT;

-- The first time each message reached each figure (sent, delivered, opened,
-- clicked, `link:<url>`, ...): inserted with ON CONFLICT DO NOTHING, so only a
-- message's first open (click, ...) counts, whatever the duplicates, the order
-- or the concurrency. `created_at` is that first event's time.
CREATE TABLE message_firsts (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    message_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    campaign_id TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, message_id, kind)
);

-- Counters, upserted in the transaction that inserts the firsts above.
CREATE TABLE campaign_stats (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    campaign_id TEXT NOT NULL,
    metric      TEXT NOT NULL,
    n           BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id, metric)
);

CREATE TABLE campaign_links (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    campaign_id TEXT NOT NULL,
    link        TEXT NOT NULL,
    n           BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id, link)
);

-- Per tenant and hour (epoch ms of the hour's start, UTC).
CREATE TABLE tenant_stats (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    bucket_start BIGINT NOT NULL,
    metric       TEXT NOT NULL,
    n            BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, bucket_start, metric)
);
CREATE INDEX tenant_stats_time ON tenant_stats (bucket_start);
-- Per-bucket recipients and unsubscribes are counted from these when asked.
CREATE INDEX campaigns_created ON campaigns (created_at);
CREATE INDEX suppressions_reason_time ON suppressions (reason, created_at);
