-- A dynamic segment carries a filter (JSON, see domain::filter) instead of
-- members; NULL for a static segment. Its membership is evaluated when a
-- campaign is enqueued.
ALTER TABLE segments ADD COLUMN filter TEXT;
-- Engagement conditions ("opened within 30 days") find a tenant's events of
-- one type through this index instead of scanning every tenant's events.
CREATE INDEX webhook_events_tenant_type ON webhook_events (tenant_id, event_type, received_at);
