-- Issue 23: topics, a tenant's subjects of mail (like Resend's Topics), and
-- each contact's choice per topic. A contact without a row for a topic is at
-- the topic's default: `opt_in` (not subscribed until they say so) or
-- `opt_out` (subscribed until they say no). A campaign may target a topic;
-- it keeps the topic's id (no foreign key: a deleted topic's unsent mail is
-- stopped at claim, not sent to people whose choice went with the topic).
CREATE TABLE topics (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                 TEXT NOT NULL,
    -- The name as compared for uniqueness: lower-cased.
    name_key             TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    default_subscription TEXT NOT NULL CHECK (default_subscription IN ('opt_in', 'opt_out')),
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    CONSTRAINT topics_tenant_name UNIQUE (tenant_id, name_key)
);
CREATE INDEX topics_tenant_id ON topics (tenant_id, id);

CREATE TABLE contact_topics (
    tenant_id  TEXT NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    topic_id   TEXT NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    state      TEXT NOT NULL CHECK (state IN ('subscribed', 'unsubscribed')),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (contact_id, topic_id)
);
-- A topic's choices by state (an audience counted or joined from the topic's
-- side; the cascade of a topic's deletion). The primary key serves the probe
-- of one contact's choice, at enqueue and at claim.
CREATE INDEX contact_topics_audience ON contact_topics (topic_id, state, contact_id);

ALTER TABLE campaigns ADD COLUMN topic_id TEXT;
