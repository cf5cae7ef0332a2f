-- The outbox row is written a million times by a large campaign: every index
-- and constraint on it is paid per row (issue 8, D). Measured on a 1M-recipient
-- enqueue: the two foreign-key checks took 6.4 s of 19 s.
-- * Campaigns are no longer deleted (soft delete), so nothing cascades from them.
-- * Tenant deletion deletes the tenant's messages itself (store::tenants).
-- * Messages by tenant are found through their campaign (messages_once_per_recipient)
--   or, for transactional mail, through the partial index below.
ALTER TABLE messages DROP CONSTRAINT messages_campaign_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_tenant_id_fkey;
DROP INDEX messages_tenant;
CREATE INDEX messages_transactional ON messages (tenant_id) WHERE campaign_id IS NULL;
