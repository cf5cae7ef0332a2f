//! SQLite's WAL checkpoints, off the request path. A WAL database copies what
//! was committed back into its main file from time to time; left to SQLite,
//! the connection whose commit crosses the threshold does it before its
//! commit returns, so one request (the enqueue of a large campaign, a claim)
//! pays for everyone's pages. Here the store's connections never checkpoint
//! on commit and this worker does it every second, beside them: a passive
//! checkpoint waits for no reader and no writer. Durability is the commit's
//! (the WAL is synced at every commit, `synchronous = FULL`), not the
//! checkpoint's.

use std::time::Duration;

use futures::future::BoxFuture;

use super::{Cadence, Step, Worker};
use crate::store::Store;

/// How often the WAL is copied back.
const EVERY: Duration = Duration::from_secs(1);

pub struct Checkpoint {
    store: Store,
}

impl Checkpoint {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl Worker for Checkpoint {
    fn name(&self) -> &'static str {
        "wal_checkpoint"
    }

    fn step(&self) -> BoxFuture<'_, anyhow::Result<Step>> {
        Box::pin(async move {
            if let Err(e) = self.store.checkpoint().await {
                tracing::warn!(error = %e, "WAL checkpoint failed; tried again in a second");
            }
            Ok(Step::Idle)
        })
    }

    fn cadence(&self) -> Cadence {
        Cadence::Every { every: EVERY, first_now: false }
    }
}
