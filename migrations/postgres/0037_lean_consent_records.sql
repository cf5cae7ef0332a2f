-- Consent records cost an import a fifth of its speed: per contact a heap
-- row, two index entries and a foreign-key check of its tenant. A record is
-- read only through its contact's history, so its one index is that
-- history's key (tenant, contact, time, id). As with the outbox (migration
-- 0011), the tenant's foreign key goes: tenant deletion deletes the records
-- and their client details explicitly (Store::delete_tenant). Client details
-- keep the record's id without a foreign key (which needs a unique index on it).
ALTER TABLE consent_clients DROP CONSTRAINT consent_clients_record_id_fkey;
ALTER TABLE consent_records DROP CONSTRAINT consent_records_pkey;
ALTER TABLE consent_records DROP CONSTRAINT consent_records_tenant_id_fkey;
DROP INDEX consent_records_contact;
ALTER TABLE consent_records ADD PRIMARY KEY (tenant_id, contact_id, at, id);
