//! The queue-depth and reputation gauges of `/metrics`. They come from the
//! database, but not at scrape time: this worker refreshes them every few
//! seconds, so however often (or by however many) /metrics is scraped, the
//! database sees one small query.

use std::time::Duration;

use futures::future::BoxFuture;

use super::{Cadence, Step, Worker};
use crate::store::Store;

/// How often the gauges are read from the database.
pub const QUEUE_GAUGE_SECS: u64 = 5;

pub struct QueueGauges {
    store: Store,
    every: Duration,
}

impl QueueGauges {
    pub fn new(store: Store) -> Self {
        Self { store, every: Duration::from_secs(QUEUE_GAUGE_SECS) }
    }

    /// Reads the queue depth and the tenants per reputation state into the gauges.
    pub async fn refresh(&self) {
        match self.store.queue_depth().await {
            Ok(depth) => {
                // Every lane and status is reported, zeros included, so a drained queue reads 0.
                for (priority, lane) in [(0, "transactional"), (1, "campaign")] {
                    for status in ["queued", "sending", "paused", "dead"] {
                        let n = depth.iter().find(|(p, s, _)| *p == priority && s == status).map_or(0, |(_, _, n)| *n);
                        metrics::gauge!("mailroom_queue_depth", "priority" => lane, "status" => status).set(n as f64);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the queue depth"),
        }
        // Tenants per reputation state (zeros included, so a recovery reads 0).
        match self.store.reputation_state_counts().await {
            Ok(counts) => {
                for (state, n) in counts {
                    metrics::gauge!("mailroom_tenants_by_reputation", "state" => state.as_str()).set(n as f64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the reputation states"),
        }
    }
}

impl Worker for QueueGauges {
    fn name(&self) -> &'static str {
        "queue_gauges"
    }

    fn step(&self) -> BoxFuture<'_, anyhow::Result<Step>> {
        Box::pin(async move {
            self.refresh().await;
            Ok(Step::Idle)
        })
    }

    fn cadence(&self) -> Cadence {
        Cadence::Every { every: self.every, first_now: true }
    }
}
