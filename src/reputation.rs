//! The reputation guard's periodic sweep. Bounces and complaints are judged
//! as soon as they are stored (by the event writer, after its commit); the
//! sweep catches what no event announces: figures leaving the rolling window,
//! a tenant reaching the minimum sent through sends alone, a warning clearing.

use std::time::Duration;

use tokio::sync::watch;

use crate::store::Store;

/// Re-evaluates every tenant every `every` until `stop` turns true.
pub async fn run_sweep(store: Store, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        match store.evaluate_reputation(None).await {
            Ok(changes) if !changes.is_empty() => {
                tracing::info!(changes = changes.len(), "reputation sweep changed states");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reputation sweep failed; retried at the next one"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
