//! The outbox's SQL: claiming queued messages into provider requests (batches),
//! and recording what became of each request.
//!
//! Every claim carries a fresh token. The outcome of a provider call is
//! recorded only while the batch still holds that token, so a worker whose lease
//! ran out (it stalled, or its call took too long) can never overwrite what the
//! batch's next holder recorded.
//!
//! [`claim`]: claiming (render callback, chunking, request bodies, idempotency
//! keys, holds, whose rules are [`crate::domain::outbox_policy`]'s);
//! [`due`]: batches due again (retries, lost leases), claimed again or given up;
//! [`settle`]: recording outcomes (complete, reschedule, fail, split);
//! [`turns`]: whose mail is claimed next (tenants, and a tenant's campaigns, in turn).

mod claim;
mod due;
mod render_failures;
mod settle;
mod turns;

pub use claim::ClaimAhead;
pub use turns::Turn;

pub use crate::domain::outbox_policy::{BatchShape, HOLD_MS, IDEMPOTENCY_WINDOW_MS, MAX_BATCH};

/// A provider request, exactly as it was (or will be) sent.
#[derive(Clone, Debug)]
pub struct OutboundBatch {
    pub id: String,
    pub tenant_id: String,
    pub idempotency_key: String,
    pub shape: BatchShape,
    pub payload: String,
    /// This try's number, from 1. Only provider answers count; a claim lost to a
    /// crash does not.
    pub attempt: i64,
    /// Fences this claim: an outcome is recorded only while the batch holds it.
    pub claim_token: String,
    /// When an earlier attempt's outcome became unknown (it may have been accepted).
    pub uncertain_since: Option<i64>,
    /// Message ids in payload order, so the provider's answer maps back to rows.
    pub message_ids: Vec<String>,
}

/// The result of claiming new work: what was sent to suppression instead, and the batches to send.
pub struct ClaimedBatch {
    pub suppressed: u64,
    /// Batches recorded and leased, ready to send.
    pub batches: Vec<OutboundBatch>,
}

/// What claiming a batch that is due again (a retry, or a lease that ran out) found.
pub enum DueBatch {
    /// Nothing is due.
    None,
    /// Claimed: send it.
    Claimed(OutboundBatch),
    /// Settled without sending: its campaign was cancelled or deleted, or
    /// resending could duplicate (the idempotency window has passed), or its
    /// claims kept being lost. Says how many messages it settled and how.
    Settled { status: &'static str, messages: u64 },
}

/// How the provider's answer is recorded: which batch, under which claim.
pub struct Settlement<'a> {
    pub batch: &'a OutboundBatch,
    pub error: &'a str,
}

impl super::Store {
    /// Messages waiting or in flight, for tests and readiness.
    pub async fn outbox_depth(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE status IN ('queued', 'sending')")
            .fetch_one(&self.pool)
            .await
    }
}
