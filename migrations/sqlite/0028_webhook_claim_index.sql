-- A claim of webhook deliveries takes endpoints in turn (issue 20) at a cost
-- independent of the backlog: per endpoint (and for the operator's alerts,
-- `endpoint_id IS NULL`), its oldest due deliveries are an index range of
-- this one, `ORDER BY next_attempt_at, id LIMIT k`, `id` included so that the
-- tie-break needs no sort. `webhook_deliveries_due` stays for the cheap
-- "anything due?" read, `webhook_deliveries_endpoint` for the listing of an
-- endpoint's deliveries (every status), `webhook_deliveries_in_flight` for
-- counting leases.
CREATE INDEX webhook_deliveries_endpoint_due ON webhook_deliveries (endpoint_id, next_attempt_at, id)
    WHERE status = 'pending';
