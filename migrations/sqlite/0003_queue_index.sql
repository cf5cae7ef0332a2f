-- The claim looks up a campaign's queued rows in id order. A partial index on
-- exactly those rows is touched once per message (when it leaves the queue),
-- where an index keyed by status was rewritten at every status change.
-- Per-status counts of one campaign use messages_once_per_recipient instead.
DROP INDEX messages_campaign;
CREATE INDEX messages_queue ON messages (campaign_id, id) WHERE status = 'queued';
