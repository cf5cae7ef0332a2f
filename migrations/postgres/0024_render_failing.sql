-- Issue 20, section 2: templates that fail do not drain the queue.

-- Why a campaign is paused: `render_failing` when the outbox paused it because
-- its renders kept failing; NULL for a pause by hand (and when not paused).
ALTER TABLE campaigns ADD COLUMN pause_reason TEXT;
-- The campaign's render tally since it started (or was last resumed): renders
-- counted among its first 200 recipients, the failures among them, and the
-- failures in a row (any recipient).
ALTER TABLE campaigns ADD COLUMN render_counted BIGINT NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN render_failed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN render_failed_in_a_row BIGINT NOT NULL DEFAULT 0;

-- Variables a template is checked with when saved (a JSON object), per version.
ALTER TABLE template_versions ADD COLUMN sample_variables TEXT;
