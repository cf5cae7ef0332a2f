-- The queue-depth gauges count only messages in progress: with this index (and
-- the partial index of queued messages) they never read the delivered history.
CREATE INDEX messages_in_progress ON messages (priority, status) WHERE status IN ('sending', 'paused', 'dead');
