-- Fenced claims, attempts that only count answers, the idempotency window, and
-- soft-deleted campaigns. Keep in step with the other backend's 0006.

-- Who holds a batch now: a random token set at each claim, cleared when the
-- outcome is recorded (or while the batch waits for a retry). Only the holder
-- of the current token may record an outcome.
ALTER TABLE batches ADD COLUMN claim_token TEXT;
-- Times the batch was claimed. A claim whose worker died does not consume an
-- attempt (attempts count provider answers), but endless lost claims end.
ALTER TABLE batches ADD COLUMN claims BIGINT NOT NULL DEFAULT 0;
-- When an attempt first had an unknown outcome (timeout, dropped connection,
-- 5xx, a lost claim): the provider may have accepted it then, so the same
-- Idempotency-Key may only be reused within Resend's 24 h window from there.
ALTER TABLE batches ADD COLUMN uncertain_since BIGINT;
-- SHA-256 of the request body. The body itself is rendered again for a retry
-- from the campaign (stored once) and the message rows, not kept per batch.
ALTER TABLE batches ADD COLUMN payload_hash TEXT;

-- Deleting a campaign hides it and stops its sending; its messages and events
-- stay, so late bounces and complaints still suppress and count.
ALTER TABLE campaigns ADD COLUMN deleted_at BIGINT;

-- The pacer books by time (epoch µs) rather than by slot number, so processes
-- pacing at different rates (the provider's stated limit can be lower than the
-- configured one) agree on what is booked.
ALTER TABLE send_pacer ADD COLUMN next_us BIGINT NOT NULL DEFAULT 0;
