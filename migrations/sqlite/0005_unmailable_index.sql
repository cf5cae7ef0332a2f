-- The few contacts that may not be mailed, found without scanning the rest:
-- an audience is counted as its members minus these (and suppressed addresses).
CREATE INDEX contacts_unmailable ON contacts (tenant_id) WHERE status <> 'subscribed';
