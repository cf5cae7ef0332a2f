-- Issue 21: events about no known message (another system's mail on the same
-- Resend account) are stored for dedup and nothing more: no listing, segment,
-- engagement or message lookup reads them (each names a tenant or a message),
-- so the indexes those read skip them, and such an event costs its primary
-- key alone. Every query on these indexes has `tenant_id = …` or
-- `message_id = …`, which implies the `IS NOT NULL` (both databases prove it).
-- Keep in step with postgres/0029.
DROP INDEX webhook_events_message;
CREATE INDEX webhook_events_message ON webhook_events (message_id) WHERE message_id IS NOT NULL;
DROP INDEX webhook_events_tenant_time;
CREATE INDEX webhook_events_tenant_time ON webhook_events (tenant_id, occurred_at, svix_id) WHERE tenant_id IS NOT NULL;
DROP INDEX webhook_events_tenant_type;
CREATE INDEX webhook_events_tenant_type ON webhook_events (tenant_id, event_type, received_at) WHERE tenant_id IS NOT NULL;
DROP INDEX webhook_events_engagement;
CREATE INDEX webhook_events_engagement ON webhook_events (tenant_id, contact_id, event_type)
    WHERE event_type IN ('email.opened', 'email.clicked') AND tenant_id IS NOT NULL;
