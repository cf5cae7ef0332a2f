-- Issue 20, section 4: agent runs have their own lane, model calls a daily
-- budget per tenant, tokens are counted. Keep in step with postgres/0025.

-- Whether a rule has an `agent` action: its runs are carried out in the agent
-- lane (concurrently, at most 2 per tenant, tenants in turn), the others in the
-- local lane, so no rule waits behind a model.
ALTER TABLE automations ADD COLUMN uses_agent INTEGER NOT NULL DEFAULT 0;
UPDATE automations SET uses_agent = 1 WHERE definition LIKE '%"type":"agent"%';

-- Tokens the model reported (`usage`) for the run's decision.
ALTER TABLE automation_runs ADD COLUMN input_tokens INTEGER;
ALTER TABLE automation_runs ADD COLUMN output_tokens INTEGER;

-- The operator's override of MAILROOM_AGENT_DAILY_CALLS for this tenant (NULL: the default).
ALTER TABLE tenants ADD COLUMN agent_daily_calls INTEGER;

-- Model calls booked per tenant per UTC day (`day` = epoch ms / 86 400 000),
-- and the tokens they used.
CREATE TABLE agent_usage (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day           INTEGER NOT NULL,
    calls         INTEGER NOT NULL DEFAULT 0,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
);

-- Whose turn it is in the agent lane: the tenant with the lowest `turn` that
-- has a run due (and fewer than 2 in flight) is served next.
CREATE TABLE agent_turns (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    turn      INTEGER NOT NULL
);
