//! The reputation guard's periodic sweep. Bounces and complaints are judged
//! as soon as they are stored (by the event writer, after its commit); the
//! sweep catches what no event announces: figures leaving the rolling window,
//! a tenant reaching the minimum sent through sends alone, a warning clearing.

use std::time::Duration;

use futures::future::BoxFuture;

use super::{Cadence, Step, Worker};
use crate::store::Store;

/// Re-evaluates every tenant every `every` (`MAILROOM_REPUTATION_SWEEP_SECS`).
pub struct ReputationSweep {
    store: Store,
    every: Duration,
}

impl ReputationSweep {
    pub fn new(store: Store, every: Duration) -> Self {
        Self { store, every }
    }

    /// One pass; a failure is logged and retried at the next pass.
    pub async fn sweep(&self) {
        match self.store.evaluate_reputation(None).await {
            Ok(changes) if !changes.is_empty() => {
                tracing::info!(changes = changes.len(), "reputation sweep changed states");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reputation sweep failed; retried at the next one"),
        }
    }
}

impl Worker for ReputationSweep {
    fn name(&self) -> &'static str {
        "reputation_sweep"
    }

    fn step(&self) -> BoxFuture<'_, anyhow::Result<Step>> {
        Box::pin(async move {
            self.sweep().await;
            Ok(Step::Idle)
        })
    }

    fn cadence(&self) -> Cadence {
        Cadence::Every { every: self.every, first_now: true }
    }
}
