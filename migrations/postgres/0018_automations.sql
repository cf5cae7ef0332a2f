-- Issue 10, section 3: automations. Keep in step with sqlite/0018.

-- A tenant's rule: a trigger (an event type, optionally narrowed to one
-- campaign, one link, or contacts with one tag), optional conditions and
-- actions, the whole of it as JSON in `definition`. The trigger's parts that
-- event ingestion matches on are columns too, so matching is one indexed query.
-- `starter` names a starter rule (one of each per tenant).
CREATE TABLE automations (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    enabled          BIGINT NOT NULL DEFAULT 0,
    trigger_event    TEXT NOT NULL,
    trigger_campaign TEXT,
    trigger_link     TEXT,
    -- `email.delivery_delayed` only: run this many ms after the event, and only
    -- if the message has not been delivered by then.
    wait_ms          BIGINT NOT NULL DEFAULT 0,
    definition       TEXT NOT NULL,
    starter          TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX automations_tenant ON automations (tenant_id, enabled, trigger_event);
CREATE UNIQUE INDEX automations_starter ON automations (tenant_id, starter) WHERE starter IS NOT NULL;

-- One rule firing for one (message, event type): the unique key is what makes
-- a rule fire at most once, whatever Resend retries. A run is also the durable
-- job that carries out the rule's actions: claimed under a lease and a token
-- like the outbox's batches; `step` is the next action, `waited` says whether
-- that action's delay has passed already. `log` holds each step's outcome
-- (JSON); the agent's decision has columns of its own.
CREATE TABLE automation_runs (
    id            TEXT PRIMARY KEY,
    automation_id TEXT NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    message_id    TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    svix_id       TEXT NOT NULL,
    campaign_id   TEXT,
    contact_id    TEXT,
    link          TEXT,
    status        TEXT NOT NULL,
    step          BIGINT NOT NULL DEFAULT 0,
    waited        BIGINT NOT NULL DEFAULT 0,
    due_at        BIGINT NOT NULL,
    claim_token   TEXT,
    attempts      BIGINT NOT NULL DEFAULT 0,
    log           TEXT NOT NULL DEFAULT '[]',
    tool          TEXT,
    arguments     TEXT,
    reason        TEXT,
    outcome       TEXT,
    latency_ms    BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX automation_runs_once ON automation_runs (automation_id, message_id, event_type);
CREATE INDEX automation_runs_due ON automation_runs (due_at) WHERE status = 'pending';
CREATE INDEX automation_runs_rule ON automation_runs (automation_id, created_at, id);

-- A rule's `send_template` to a contact, once per campaign (`scope` is the
-- campaign, or the triggering message when it belongs to none).
CREATE TABLE automation_sends (
    automation_id TEXT NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
    contact_key   TEXT NOT NULL,
    scope         TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (automation_id, contact_key, scope)
);

-- Sends the agent chose, per tenant and UTC day, against the daily cap.
CREATE TABLE agent_sends (
    tenant_id TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day       BIGINT NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day)
);

-- A contact's opens and clicks, for the agent's view of its engagement.
CREATE INDEX webhook_events_engagement ON webhook_events (tenant_id, contact_id, event_type)
    WHERE event_type IN ('email.opened', 'email.clicked');

-- `campaign.sent` goes to a tenant's webhooks once, when the last of a
-- campaign's messages leaves the queue: this marks the campaigns told. The
-- campaigns of before are counted as told.
ALTER TABLE campaigns ADD COLUMN sent_notified_at BIGINT;
UPDATE campaigns SET sent_notified_at = created_at;
CREATE INDEX campaigns_unnotified ON campaigns (created_at) WHERE sent_notified_at IS NULL;
