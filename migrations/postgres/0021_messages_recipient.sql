-- The dashboard looks messages up by recipient address (newest first). The
-- outbox row pays for every index on it (see 0011); this one is one entry per
-- message, the price of answering "what did we send to this address?" without
-- a scan of the tenant's messages.
CREATE INDEX messages_recipient ON messages (tenant_id, lower(to_email), created_at);
