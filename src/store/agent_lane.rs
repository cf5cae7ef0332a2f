//! The agent lane's storage: runs of rules with an `agent` action are claimed
//! one at a time, tenants in turn, at most `per_tenant` in flight per tenant
//! (across every worker process: the count is read from the leases); model
//! calls are booked against the tenant's daily budget; tokens are summed per
//! tenant and UTC day.

use std::collections::HashMap;

use super::lease::{lease, AUTOMATION_RUNS};
use super::{Backend, ClaimedRun, Store, DAY_MS};
use crate::domain::TenantId;

/// The tenant to serve next: of those with an agent run due and fewer than
/// `$2` in flight (claimed under a lease that has not run out), the one whose
/// last turn is the oldest (never served: first).
const NEXT_TENANT: &str = "SELECT d.tenant_id FROM \
   (SELECT r.tenant_id FROM automation_runs r JOIN automations a ON a.id = r.automation_id \
     WHERE r.status = 'pending' AND r.due_at <= $1 AND a.uses_agent = 1 GROUP BY r.tenant_id) d \
 LEFT JOIN (SELECT r.tenant_id, COUNT(*) AS n FROM automation_runs r JOIN automations a ON a.id = r.automation_id \
     WHERE r.status = 'pending' AND r.claim_token IS NOT NULL AND r.due_at > $1 AND a.uses_agent = 1 \
     GROUP BY r.tenant_id) f ON f.tenant_id = d.tenant_id \
 LEFT JOIN agent_turns t ON t.tenant_id = d.tenant_id \
 WHERE COALESCE(f.n, 0) < $2 ORDER BY COALESCE(t.turn, 0), d.tenant_id LIMIT 1";

/// Whether a model call was booked, and the tenant's budget for the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentCallBooking {
    pub booked: bool,
    /// Calls a day: the operator's figure for the tenant, else the default.
    pub cap: i64,
}

/// A tenant's model use, for the operator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentUsage {
    /// Model calls booked today (UTC).
    pub calls_today: i64,
    /// Tokens reported, all days together.
    pub input_tokens: i64,
    pub output_tokens: i64,
}

impl Store {
    /// Claims the next agent run for `lease_ms`: the oldest due run of the
    /// tenant whose turn it is, if any tenant has one due and fewer than
    /// `per_tenant` in flight. The tenant's turn moves to the back.
    pub async fn claim_agent_run(&self, lease_ms: i64, per_tenant: i64) -> Result<Option<ClaimedRun>, sqlx::Error> {
        // A read first, without the write lock: mostly there is nothing to claim.
        let now = self.now_ms();
        let next: Option<String> =
            sqlx::query_scalar(NEXT_TENANT).bind(now).bind(per_tenant).fetch_optional(&self.pool).await?;
        if next.is_none() {
            return Ok(None);
        }
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        if self.backend == Backend::Postgres {
            // Claims take turns (SQLite's write transactions do already), so
            // that two lanes cannot both see a tenant below its limit and pass it.
            sqlx::query("LOCK TABLE agent_turns IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
        }
        let Some(tenant) =
            sqlx::query_scalar::<_, String>(NEXT_TENANT).bind(now).bind(per_tenant).fetch_optional(&mut *tx).await?
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        let run: Option<ClaimedRun> = sqlx::query_as(&self.due_rows_sql(
            &AUTOMATION_RUNS,
            "SELECT r.id, r.automation_id, r.tenant_id, r.message_id, r.event_type, r.campaign_id, r.contact_id, \
               r.link, r.step, r.waited, r.attempts, r.log, '' AS claim_token, a.enabled, a.definition \
             FROM automation_runs r JOIN automations a \
               ON a.id = r.automation_id AND a.uses_agent = 1 AND r.tenant_id = $3",
        ))
        .bind(now)
        .bind(1_i64)
        .bind(&tenant)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(mut run) = run else {
            tx.rollback().await?;
            return Ok(None);
        };
        run.claim_token = lease(&mut tx, &AUTOMATION_RUNS, &[run.id.as_str()], lease_ms, now).await?;
        sqlx::query(
            "INSERT INTO agent_turns (tenant_id, turn) VALUES ($1, (SELECT COALESCE(MAX(turn), 0) + 1 FROM agent_turns)) \
             ON CONFLICT (tenant_id) DO UPDATE SET turn = (SELECT COALESCE(MAX(t.turn), 0) + 1 FROM agent_turns t)",
        )
        .bind(&tenant)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(run))
    }

    /// Books one model call of the tenant for today (UTC) if its budget
    /// allows: the operator's figure for the tenant, else `default_cap`. One
    /// conditional upsert, so concurrent runs cannot pass the budget.
    pub async fn take_agent_call(&self, tenant_id: &str, default_cap: i64) -> Result<AgentCallBooking, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let day = tx.now / DAY_MS;
        let set: Option<Option<i64>> = sqlx::query_scalar("SELECT agent_daily_calls FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
        let cap = set.flatten().unwrap_or(default_cap).max(0);
        let booked: Option<i64> = sqlx::query_scalar(
            "INSERT INTO agent_usage (tenant_id, day, calls, input_tokens, output_tokens) \
             SELECT $1, $2, 1, 0, 0 WHERE $3 >= 1 \
             ON CONFLICT (tenant_id, day) DO UPDATE SET calls = agent_usage.calls + 1 WHERE agent_usage.calls < $3 \
             RETURNING calls",
        )
        .bind(tenant_id)
        .bind(day)
        .bind(cap)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AgentCallBooking { booked: booked.is_some_and(|n| n <= cap), cap })
    }

    /// Every tenant's model use: calls today (UTC), tokens all told.
    pub async fn agent_usage(&self) -> Result<HashMap<String, AgentUsage>, sqlx::Error> {
        let today = self.now_ms() / DAY_MS;
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT tenant_id, CAST(SUM(CASE WHEN day = $1 THEN calls ELSE 0 END) AS BIGINT), \
               CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT) \
             FROM agent_usage GROUP BY tenant_id",
        )
        .bind(today)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(t, calls_today, input_tokens, output_tokens)| {
                (t, AgentUsage { calls_today, input_tokens, output_tokens })
            })
            .collect())
    }

    /// Sets the operator's budget of model calls a day for the tenant (`None`:
    /// the default). False if there is no such tenant.
    pub async fn set_agent_daily_calls(&self, id: &TenantId, calls: Option<i64>) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let done = sqlx::query("UPDATE tenants SET agent_daily_calls = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(calls)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
