-- The DMARC policy mailroom last saw published for the tenant's domain:
-- NULL (never looked up), 'missing', or the policy (none, quarantine, reject).
-- A send reads it instead of looking DNS up in the request.
ALTER TABLE tenants ADD COLUMN dmarc_policy TEXT;
