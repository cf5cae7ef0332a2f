-- Campaign lifecycle and the account-wide send pacer. Keep in step with postgres/0002.

-- NULL: the status follows from the messages; 'paused' or 'cancelled' when set by hand.
ALTER TABLE campaigns ADD COLUMN state TEXT;
ALTER TABLE campaigns ADD COLUMN scheduled_at INTEGER;

-- One row: the next free send slot for the whole provider account, shared by
-- every worker process so that together they stay under the provider's limit.
CREATE TABLE send_pacer (
    id         INTEGER PRIMARY KEY,
    next_index INTEGER NOT NULL
);
INSERT INTO send_pacer (id, next_index) VALUES (1, 0);

CREATE INDEX messages_dead ON messages (tenant_id, campaign_id) WHERE status = 'dead';

-- Set on the messages of a batch the provider rejected as a whole (422), so
-- each is retried alone and only the invalid ones become dead letters.
ALTER TABLE messages ADD COLUMN solo INTEGER NOT NULL DEFAULT 0;
