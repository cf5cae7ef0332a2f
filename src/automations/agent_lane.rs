//! The agent lane: runs of rules with an `agent` action, apart from the
//! others, so that a model's seconds never hold up a tag, a suppression or an
//! alert. Up to `MAILROOM_AGENT_CONCURRENCY` runs are carried out at once in a
//! process (one per lane), at most [`PER_TENANT`] of one tenant across every
//! process, and tenants take turns: one tenant's backlog of thousands of runs
//! does not hold up another's next run by more than one turn.

use std::time::Duration;

use futures::future::BoxFuture;

use super::{Engine, LEASE_MS};
use crate::workers::{Cadence, Step, Stop, Worker};

/// Agent runs of one tenant in flight at once, whatever the lanes.
pub const PER_TENANT: i64 = 2;

/// The agent lane's worker: each lane claims one run (the next tenant's turn)
/// and carries it out.
pub struct AgentRuns {
    engine: Engine,
}

impl AgentRuns {
    pub(super) fn new(engine: Engine) -> Self {
        Self { engine }
    }

    /// Claims the next agent run (tenants in turn, at most [`PER_TENANT`] each
    /// in flight) and carries it out. False when none was claimable.
    pub async fn step(&self) -> anyhow::Result<bool> {
        let Some(run) = self.engine.store.claim_agent_run(LEASE_MS, PER_TENANT).await? else {
            return Ok(false);
        };
        self.engine.run_one(&run).await;
        Ok(true)
    }
}

impl Worker for AgentRuns {
    fn name(&self) -> &'static str {
        "agent_runs"
    }

    fn step(&self) -> BoxFuture<'_, anyhow::Result<Step>> {
        Box::pin(async move { Ok(if self.step().await? { Step::Worked } else { Step::Idle }) })
    }

    fn cadence(&self) -> Cadence {
        // Every lane looks when idle: a little longer than the local lane's
        // pause keeps eight idle lanes' reads few, against a model's seconds.
        Cadence::Queue { idle: Duration::from_millis(500), after_error: Duration::from_secs(1), wake: None }
    }

    fn lanes(&self) -> usize {
        self.engine.agent_concurrency
    }

    fn stop(&self) -> Stop {
        Stop::Finish {
            grace: Duration::from_secs(15),
            overdue: "agent runs in flight did not finish; they are retried after their lease",
        }
    }

    fn failed(&self, error: &anyhow::Error) {
        tracing::error!(error = ?error, "agent run step failed");
    }
}
