-- PostgreSQL drops the foreign keys of `messages` here (see its 0011). SQLite
-- cannot drop a constraint without rebuilding the table, and checks keys
-- cheaply; it keeps them, and deletes a tenant's messages the same explicit way.
CREATE INDEX messages_transactional ON messages (tenant_id) WHERE campaign_id IS NULL;
