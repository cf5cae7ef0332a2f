-- The dashboard lists what was sent to an address, newest first. Campaign
-- mail is found through its contact (messages_once_per_recipient); this
-- partial index finds transactional mail by address. It is partial so the
-- campaign rows, written a million at a time, pay nothing for it (see 0011).
CREATE INDEX messages_recipient ON messages (tenant_id, lower(to_email), created_at) WHERE campaign_id IS NULL;
