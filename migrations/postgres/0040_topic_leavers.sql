-- A campaign's `unsubscribed` figure counts the recipients who left the
-- campaign's topic through its mail (one-click or the preference centre),
-- not only those who unsubscribed from everything: these are read per
-- campaign from the consent records. Partial, so that only topic leaves
-- pay for it (an import's records do not).
CREATE INDEX consent_records_topic_leavers ON consent_records (tenant_id, campaign_id, contact_id)
    WHERE change = 'topic_unsubscribed' AND campaign_id IS NOT NULL;
