-- Issue 23, section 3: consent records. Every change of a contact's consent
-- appends one row; rows are never updated (erasure deletes only the client
-- details kept beside them, in consent_clients). A record outlives its
-- contact (no foreign key to contacts: proof of consent must survive the
-- contact's deletion); it goes with its tenant.
CREATE TABLE consent_records (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    contact_id           TEXT NOT NULL,
    at                   BIGINT NOT NULL,
    -- created, confirmed, topic_subscribed, topic_unsubscribed, unsubscribed,
    -- resubscribed, suppressed, suppressed_bounce, suppressed_complaint, imported
    change               TEXT NOT NULL,
    topic_id             TEXT,
    -- form, api, import, preference_centre, one_click, complaint, bounce,
    -- dashboard, automation, before_consent_records
    source               TEXT NOT NULL,
    -- Free text about the source (an import's consent_source column).
    source_note          TEXT,
    form_id              TEXT,
    campaign_id          TEXT,
    consent_text         TEXT,
    consent_text_version TEXT
);
CREATE INDEX consent_records_contact ON consent_records (tenant_id, contact_id, at);

-- The person's client when there was one (a public page's POST), apart from
-- the record so that erasure can delete it while the record stays.
CREATE TABLE consent_clients (
    record_id  TEXT PRIMARY KEY REFERENCES consent_records (id) ON DELETE CASCADE,
    ip         TEXT,
    user_agent TEXT
);

-- One record for each contact that existed before consent was recorded. Its
-- id is the contact's with the UUID version digit 0 (mailroom's own ids are
-- version 7): unique as contact ids are, and never one a later record gets.
INSERT INTO consent_records (id, tenant_id, contact_id, at, change, source)
SELECT substr(id, 1, 14) || '0' || substr(id, 16), tenant_id, id, created_at, 'created', 'before_consent_records'
FROM contacts;
