-- Consent records cost an import a fifth of its speed (three B-tree inserts
-- a contact: the table, its primary key, its history index). A record is
-- read only through its contact's history, so the table is that history:
-- clustered on (tenant, contact, time, id), without a rowid, one B-tree
-- insert a record. Client details keep the record's id without a foreign
-- key (which needs a unique index on it); tenant deletion deletes them
-- explicitly (Store::delete_tenant).
CREATE TABLE consent_clients_lean (
    record_id  TEXT PRIMARY KEY,
    ip         TEXT,
    user_agent TEXT
) WITHOUT ROWID;
INSERT INTO consent_clients_lean (record_id, ip, user_agent) SELECT record_id, ip, user_agent FROM consent_clients;
DROP TABLE consent_clients;
ALTER TABLE consent_clients_lean RENAME TO consent_clients;

CREATE TABLE consent_records_lean (
    id                   TEXT NOT NULL,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    contact_id           TEXT NOT NULL,
    at                   INTEGER NOT NULL,
    change               TEXT NOT NULL,
    topic_id             TEXT,
    source               TEXT NOT NULL,
    source_note          TEXT,
    form_id              TEXT,
    campaign_id          TEXT,
    consent_text         TEXT,
    consent_text_version TEXT,
    PRIMARY KEY (tenant_id, contact_id, at, id)
) WITHOUT ROWID;
INSERT INTO consent_records_lean
SELECT id, tenant_id, contact_id, at, change, topic_id, source, source_note, form_id, campaign_id, consent_text,
       consent_text_version
FROM consent_records;
DROP TABLE consent_records;
ALTER TABLE consent_records_lean RENAME TO consent_records;
