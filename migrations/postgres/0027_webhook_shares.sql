-- Fair shares of webhook deliveries (issue 20). A claim counts the deliveries
-- in flight (leased, not yet recorded) per endpoint and per tenant, so that
-- the caps hold across every worker process: a small partial index, since
-- only a handful are in flight at any time.
CREATE INDEX webhook_deliveries_in_flight ON webhook_deliveries (endpoint_id, tenant_id)
    WHERE claim_token IS NOT NULL AND status = 'pending';

-- Test events and replays are rate-limited per endpoint (a generic cell rate):
-- the theoretical arrival time of the next one, in ms; NULL before the first.
ALTER TABLE webhook_endpoints ADD COLUMN manual_sends_tat BIGINT;
