-- Batch and provider ids are unset while a message waits; indexing only the
-- rows that have them keeps a large enqueue from writing an entry per row.
DROP INDEX messages_batch;
CREATE INDEX messages_batch ON messages (batch_id) WHERE batch_id IS NOT NULL;
DROP INDEX messages_provider;
CREATE INDEX messages_provider ON messages (provider_id) WHERE provider_id IS NOT NULL;
