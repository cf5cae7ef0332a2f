-- Issue 23, section 2: signup forms and double opt-in.
--
-- A form belongs to its tenant: the topics it subscribes to and tags it adds
-- (JSON arrays), its confirmation template, its redirects (hosts allowed in
-- `redirect_hosts`, the tenant's own), the origins allowed to post JSON to it
-- (CORS), whether it asks for double opt-in, and its consent statement, whose
-- version goes up each time its text changes.
CREATE TABLE signup_forms (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                 TEXT NOT NULL,
    topic_ids            TEXT NOT NULL DEFAULT '[]',
    tags                 TEXT NOT NULL DEFAULT '[]',
    template_id          TEXT,
    thank_you_url        TEXT,
    confirmed_url        TEXT,
    redirect_hosts       TEXT NOT NULL DEFAULT '[]',
    allowed_origins      TEXT NOT NULL DEFAULT '[]',
    double_opt_in        BIGINT NOT NULL DEFAULT 1,
    consent_text         TEXT NOT NULL DEFAULT '',
    consent_text_version BIGINT NOT NULL DEFAULT 1,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX signup_forms_tenant ON signup_forms (tenant_id, id);

-- One request for confirmation (double opt-in): the signed link in the
-- confirmation email names it. It goes with its contact.
CREATE TABLE signups (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    contact_id           TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    -- NULL for the API's `double_opt_in`.
    form_id              TEXT,
    consent_text         TEXT,
    consent_text_version TEXT,
    created_at           BIGINT NOT NULL,
    confirmed_at         BIGINT
);
CREATE INDEX signups_contact ON signups (contact_id);

-- Posts to public forms, for their rate limits: only a keyed hash of the
-- address or of the client's IP is kept (an expired pending contact leaves
-- nothing else behind). Rows older than the window are swept.
CREATE TABLE signup_attempts (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_hash  TEXT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX signup_attempts_key ON signup_attempts (tenant_id, key_hash, at);
CREATE INDEX signup_attempts_at ON signup_attempts (at);

-- Pending contacts (status 'pending': unconfirmed double opt-in), oldest
-- first, for their expiry. Campaign mail already skips every contact whose
-- status is not 'subscribed', at enqueue and at claim.
CREATE INDEX contacts_pending ON contacts (created_at) WHERE status = 'pending';
