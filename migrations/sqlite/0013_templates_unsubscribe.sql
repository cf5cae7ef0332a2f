-- Issue 9: templates with versions, one-click unsubscribe, the suppression list's source.

-- A template is a name and its current version; every change adds a version.
-- A campaign copies the version it uses, so editing a template never changes
-- mail already queued.
CREATE TABLE templates (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX templates_tenant ON templates (tenant_id, id);

CREATE TABLE template_versions (
    template_id TEXT NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    name        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    html        TEXT NOT NULL,
    text_body   TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (template_id, version)
);

-- Content rendered by the template engine (rather than the seed's inline
-- `{{first_name}}` replacement) records which template version it came from;
-- `variables` is the send's JSON object.
ALTER TABLE campaigns ADD COLUMN template_id TEXT;
ALTER TABLE campaigns ADD COLUMN template_version BIGINT;
ALTER TABLE campaigns ADD COLUMN variables TEXT;
ALTER TABLE messages ADD COLUMN template_id TEXT;
ALTER TABLE messages ADD COLUMN template_version BIGINT;
ALTER TABLE messages ADD COLUMN variables TEXT;
-- 1 when a transactional email asked for List-Unsubscribe headers (campaign mail always has them).
ALTER TABLE messages ADD COLUMN list_unsubscribe BIGINT;

-- Where a suppression came from: a message or campaign id, `api` or `import`.
ALTER TABLE suppressions ADD COLUMN source TEXT;
CREATE INDEX suppressions_source ON suppressions (tenant_id, source);

-- Per tenant: append an unsubscribe footer to campaign html that has no {{unsubscribe_url}}.
ALTER TABLE tenants ADD COLUMN unsubscribe_footer BIGINT NOT NULL DEFAULT 1;
