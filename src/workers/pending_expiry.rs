//! Forgets unconfirmed signups (issue 23): a pending contact whom nobody
//! confirmed within `MAILROOM_PENDING_DAYS` is deleted, with the client
//! details of its consent records; only the keyed hash of its address that
//! the signup rate limit counted stays (and goes with the limit's window).

use std::time::Duration;

use futures::future::BoxFuture;

use super::{Cadence, Step, Worker};
use crate::domain::signup::LIMIT_WINDOW_MS;
use crate::store::Store;

/// How often the sweep runs.
const EVERY: Duration = Duration::from_secs(600);

pub struct PendingExpiry {
    store: Store,
    keep_ms: i64,
}

impl PendingExpiry {
    /// Forgets pending contacts older than `days`.
    pub fn new(store: Store, days: u64) -> Self {
        let keep_ms = i64::try_from(days.saturating_mul(86_400_000)).unwrap_or(i64::MAX);
        Self { store, keep_ms }
    }

    /// One pass; a failure is logged and retried at the next pass.
    pub async fn sweep(&self) {
        let now = self.store.now_ms();
        match self.store.expire_pending(now.saturating_sub(self.keep_ms), now - LIMIT_WINDOW_MS).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(contacts = n, "unconfirmed pending contacts forgotten"),
            Err(e) => tracing::warn!(error = %e, "pending contacts' expiry failed; retried at the next pass"),
        }
    }
}

impl Worker for PendingExpiry {
    fn name(&self) -> &'static str {
        "pending_expiry"
    }

    fn step(&self) -> BoxFuture<'_, anyhow::Result<Step>> {
        Box::pin(async move {
            self.sweep().await;
            Ok(Step::Idle)
        })
    }

    fn cadence(&self) -> Cadence {
        Cadence::Every { every: EVERY, first_now: true }
    }
}
