-- One row per streamed contact import (CSV, NDJSON, the dashboard's upload):
-- what it wrote and refused, and whether its body ended early. The counters
-- move in the same transaction as each chunk of rows, so a report never
-- claims rows that were not committed, whatever happens to the request.
-- `errors` is a JSON list of the first rejected rows ({line, reason}).
-- Deleting a tenant deletes its imports.
CREATE TABLE contact_imports (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    format      TEXT NOT NULL,
    on_conflict TEXT NOT NULL,
    -- running | completed | ended_early | refused | failed
    status      TEXT NOT NULL,
    end_reason  TEXT,
    created     BIGINT NOT NULL DEFAULT 0,
    updated     BIGINT NOT NULL DEFAULT 0,
    skipped     BIGINT NOT NULL DEFAULT 0,
    rejected    BIGINT NOT NULL DEFAULT 0,
    errors      TEXT NOT NULL DEFAULT '[]',
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX contact_imports_newest ON contact_imports (tenant_id, started_at);
