-- Fair shares of the provider's rate (issue 20). Keep in step with the other
-- database's 0023.
--
-- The claim serves tenants with due mail in turn (start-time fair queueing,
-- counted in provider requests): each (tenant, lane) has a finish tag `pass`,
-- each lane a virtual time `vtime` (the start tag of the last request served).
-- A tenant's next request starts at max(pass, vtime) and the tenant with the
-- smallest start goes next; serving it moves its pass on by requests / weight.
-- Within a tenant its campaigns take turns the same way (`campaign_turns.pass`
-- against the tenant's `inner_clock`).

-- Set by the operator only: a tenant of weight 2 gets twice the share of one of weight 1.
ALTER TABLE tenants ADD COLUMN send_weight INTEGER NOT NULL DEFAULT 1;

CREATE TABLE send_turns (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    lane        INTEGER NOT NULL,
    pass        BIGINT NOT NULL,
    inner_clock BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, lane)
);

CREATE TABLE send_clocks (
    lane  INTEGER PRIMARY KEY,
    vtime BIGINT NOT NULL
);
INSERT INTO send_clocks (lane, vtime) VALUES (0, 0);
INSERT INTO send_clocks (lane, vtime) VALUES (1, 0);

-- A campaign's pass among its tenant's campaigns (no row: 0). A narrow table of
-- its own: moving it on every claim rewrites a few bytes, not the campaign's row.
CREATE TABLE campaign_turns (
    campaign_id TEXT PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    pass        BIGINT NOT NULL
);

-- Which tenants have due mail in a lane: one probe per tenant.
DROP INDEX messages_due;
CREATE INDEX messages_due ON messages (priority, tenant_id, due_at) WHERE status = 'queued';
