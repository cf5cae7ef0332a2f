//! The reputation guard's SQL: each tenant's rolling window read from the
//! hourly `tenant_stats` counters (never a scan of events), its state and the
//! history of changes, and the alerts a change queues (to the tenant's
//! webhooks as `reputation.changed`, and to the operator's alert webhook as a
//! delivery without an endpoint), all in the transaction that changes it.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sqlx::{AnyConnection, FromRow};

use super::stats::HOUR_MS;
use super::tenant_webhooks::{enqueue_tenant_events, webhook_body};
use super::{placeholders, Store};
use crate::domain::{new_id, rfc3339, ReputationCounts, ReputationPolicy, ReputationState, TenantId};

/// The event type of every state change, to tenants and to the operator.
pub const REPUTATION_EVENT: &str = "reputation.changed";

/// The figures the guard reads.
const METRICS: &str = "'sent', 'delivered', 'bounced_hard', 'complained'";

#[derive(Clone, Debug, FromRow)]
struct StateRow {
    tenant_id: String,
    state: String,
    changed_at: i64,
    baseline_at: Option<i64>,
    baseline_bucket: Option<i64>,
    baseline_sent: i64,
    baseline_delivered: i64,
    baseline_bounced: i64,
    baseline_complained: i64,
}

/// A tenant's standing: its state, and its window's figures.
#[derive(Clone, Debug)]
pub struct TenantReputation {
    pub tenant_id: String,
    pub name: String,
    pub state: ReputationState,
    /// When the state last changed (None: never).
    pub changed_at: Option<i64>,
    /// The last admin resume: only what happened after it counts.
    pub resumed_at: Option<i64>,
    /// Where the window starts (later than 7 days back after a recent resume).
    pub window_from: i64,
    pub counts: ReputationCounts,
}

/// One state change, as the history shows it.
#[derive(Clone, Debug, FromRow)]
pub struct ReputationChange {
    pub id: String,
    pub from_state: String,
    pub to_state: String,
    pub actor: String,
    pub reason: String,
    pub sent: i64,
    pub delivered: i64,
    pub bounced: i64,
    pub complained: i64,
    pub created_at: i64,
}

/// What an admin resume found.
#[derive(Debug, PartialEq, Eq)]
pub enum ResumeOutcome {
    Resumed,
    /// The tenant was not paused; nothing changed.
    NotPaused(ReputationState),
}

/// The first hour bucket of the window that ends with the current hour.
fn window_start(policy: &ReputationPolicy, now: i64) -> i64 {
    let hour = now.div_euclid(HOUR_MS) * HOUR_MS;
    hour + HOUR_MS - policy.window_ms.max(HOUR_MS)
}

fn add(counts: &mut ReputationCounts, metric: &str, n: i64) {
    match metric {
        "sent" => counts.sent += n,
        "delivered" => counts.delivered += n,
        "bounced_hard" => counts.bounced += n,
        "complained" => counts.complained += n,
        _ => {}
    }
}

/// The states and window figures of `tenants` (None: every tenant with a
/// state row or figures in the window). Tenants with neither are absent.
async fn standings(
    conn: &mut AnyConnection,
    policy: &ReputationPolicy,
    tenants: Option<&[&str]>,
    now: i64,
) -> Result<BTreeMap<String, (Option<StateRow>, ReputationCounts, i64)>, sqlx::Error> {
    let since = window_start(policy, now);
    let filter = |column: &str, first: usize| match tenants {
        Some(t) => format!(" AND {column} IN ({})", placeholders(first, t.len().max(1))),
        None => String::new(),
    };
    let ids: Vec<&str> = match tenants {
        Some([]) => vec![""],
        Some(t) => t.to_vec(),
        None => Vec::new(),
    };
    let sql = format!(
        "SELECT tenant_id, state, changed_at, baseline_at, baseline_bucket, baseline_sent, baseline_delivered, \
           baseline_bounced, baseline_complained FROM tenant_reputation WHERE 1 = 1{}",
        filter("tenant_id", 1)
    );
    let mut q = sqlx::query_as::<_, StateRow>(&sql);
    for id in &ids {
        q = q.bind(*id);
    }
    let states = q.fetch_all(&mut *conn).await?;
    // One range read of the tenants' hour buckets (the primary key leads with
    // tenant_id and bucket_start); after a resume, only buckets from its hour on.
    let sql = format!(
        "SELECT s.tenant_id, s.metric, CAST(SUM(s.n) AS BIGINT) FROM tenant_stats s \
           LEFT JOIN tenant_reputation r ON r.tenant_id = s.tenant_id \
         WHERE s.bucket_start >= $1 AND s.metric IN ({METRICS}) \
           AND (r.baseline_bucket IS NULL OR s.bucket_start >= r.baseline_bucket){} \
         GROUP BY s.tenant_id, s.metric",
        filter("s.tenant_id", 2)
    );
    let mut q = sqlx::query_as::<_, (String, String, i64)>(&sql).bind(since);
    for id in &ids {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    let mut out: BTreeMap<String, (Option<StateRow>, ReputationCounts, i64)> = BTreeMap::new();
    for (tenant, metric, n) in rows {
        add(&mut out.entry(tenant).or_insert((None, ReputationCounts::default(), since)).1, &metric, n);
    }
    for s in states {
        let entry = out.entry(s.tenant_id.clone()).or_insert((None, ReputationCounts::default(), since));
        // The resume's own hour counts only above what it held at the resume.
        if let Some(bucket) = s.baseline_bucket.filter(|b| *b >= since) {
            let c = &mut entry.1;
            c.sent = (c.sent - s.baseline_sent).max(0);
            c.delivered = (c.delivered - s.baseline_delivered).max(0);
            c.bounced = (c.bounced - s.baseline_bounced).max(0);
            c.complained = (c.complained - s.baseline_complained).max(0);
            entry.2 = s.baseline_at.unwrap_or(bucket).max(since);
        }
        entry.0 = Some(s);
    }
    Ok(out)
}

impl Store {
    /// Sets the reputation guard's thresholds (default: Resend's limits, 200 sent minimum, 7 days).
    pub fn with_reputation(mut self, policy: ReputationPolicy) -> Self {
        self.reputation = policy;
        self
    }

    pub fn reputation_policy(&self) -> &ReputationPolicy {
        &self.reputation
    }

    /// One tenant's standing (an existing tenant; figures zero when it has none).
    pub async fn tenant_reputation(&self, tenant_id: &TenantId) -> Result<Option<TenantReputation>, sqlx::Error> {
        let name: Option<String> = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(name) = name else { return Ok(None) };
        let mut conn = self.pool.acquire().await?;
        let mut all = standings(&mut conn, &self.reputation, Some(&[tenant_id.as_str()]), self.now_ms()).await?;
        Ok(Some(to_reputation(
            tenant_id.as_str(),
            name,
            all.remove(tenant_id.as_str()),
            &self.reputation,
            self.now_ms(),
        )))
    }

    /// Every tenant's standing, worst first: paused, then warning, then ok;
    /// within a state, the highest rate (relative to its pause threshold) first.
    pub async fn all_reputations(&self) -> Result<Vec<TenantReputation>, sqlx::Error> {
        let tenants: Vec<(String, String)> =
            sqlx::query_as("SELECT id, name FROM tenants ORDER BY id").fetch_all(&self.pool).await?;
        let mut conn = self.pool.acquire().await?;
        let now = self.now_ms();
        let mut all = standings(&mut conn, &self.reputation, None, now).await?;
        let p = self.reputation;
        let mut out: Vec<TenantReputation> =
            tenants.into_iter().map(|(id, name)| to_reputation(&id, name, all.remove(&id), &p, now)).collect();
        let severity = |r: &TenantReputation| {
            let judged = p.counts(&r.counts);
            let b = r.counts.bounce_rate() / crate::domain::reputation::ppm_to_fraction(p.bounce_pause_ppm.max(1));
            let c =
                r.counts.complaint_rate() / crate::domain::reputation::ppm_to_fraction(p.complaint_pause_ppm.max(1));
            (r.state, judged, b.max(c))
        };
        out.sort_by(|a, b| {
            let (sa, ja, ra) = severity(a);
            let (sb, jb, rb) = severity(b);
            sb.cmp(&sa).then(jb.cmp(&ja)).then(rb.total_cmp(&ra)).then(a.tenant_id.cmp(&b.tenant_id))
        });
        Ok(out)
    }

    /// A tenant's state changes, newest first.
    pub async fn reputation_history(
        &self,
        tenant_id: &TenantId,
        limit: i64,
    ) -> Result<Vec<ReputationChange>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, from_state, to_state, actor, reason, sent, delivered, bounced, complained, created_at \
             FROM reputation_changes WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(tenant_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// How many tenants are in each state (tenants without a row are `ok`).
    pub async fn reputation_state_counts(&self) -> Result<BTreeMap<ReputationState, i64>, sqlx::Error> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM tenant_reputation WHERE state <> 'ok' GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants").fetch_one(&self.pool).await?;
        let mut out: BTreeMap<ReputationState, i64> = ReputationState::ALL.iter().map(|s| (*s, 0)).collect();
        let mut others = 0;
        for (state, n) in rows {
            *out.entry(ReputationState::parse(&state)).or_default() += n;
            others += n;
        }
        out.insert(ReputationState::Ok, (total - others).max(0));
        Ok(out)
    }

    /// Re-evaluates `tenants` (None: every tenant with figures in the window or
    /// a state) and applies the automatic changes, each with its history entry
    /// and alerts in one transaction. A change applies only if the state is
    /// still what was read, so concurrent evaluations change it once.
    /// Returns the changes made: (tenant, from, to).
    pub async fn evaluate_reputation(
        &self,
        tenants: Option<&[&str]>,
    ) -> Result<Vec<(String, ReputationState, ReputationState)>, sqlx::Error> {
        let now = self.now_ms();
        let mut conn = self.pool.acquire().await?;
        let all = standings(&mut conn, &self.reputation, tenants, now).await?;
        drop(conn);
        let mut todo = Vec::new();
        for (tenant, (state, counts, _)) in &all {
            let current = state.as_ref().map_or(ReputationState::Ok, |s| ReputationState::parse(&s.state));
            if let Some((to, reason)) = self.reputation.transition(current, counts) {
                todo.push((tenant.clone(), current, to, reason, *counts));
            }
        }
        if todo.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let mut done = Vec::new();
        for (tenant, from, to, reason, counts) in todo {
            let changed: Option<String> = sqlx::query_scalar(
                "INSERT INTO tenant_reputation (tenant_id, state, changed_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id) DO UPDATE SET state = excluded.state, changed_at = excluded.changed_at \
                 WHERE tenant_reputation.state = $4 RETURNING tenant_id",
            )
            .bind(&tenant)
            .bind(to.as_str())
            .bind(now)
            .bind(from.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if changed.is_none() {
                continue;
            }
            let change = Change { tenant: &tenant, from, to, actor: "system", reason: &reason, counts, now };
            record_change(&mut tx, &change, self.reputation.alert_operator).await?;
            done.push((tenant.clone(), from, to));
        }
        tx.commit().await?;
        for (tenant, from, to) in &done {
            tracing::warn!(alert = "reputation_changed", tenant = %tenant, from = from.as_str(), to = to.as_str(),
                "ALERT: a customer's sending reputation changed");
        }
        Ok(done)
    }

    /// An admin resumes a paused tenant: `ok` again, logged, alerted, its held
    /// campaign mail released at once. Only what happens from now on counts
    /// (the window restarts here, the minimum sent included), so the events
    /// that paused it cannot pause it again.
    pub async fn resume_reputation(
        &self,
        tenant_id: &TenantId,
        note: Option<&str>,
    ) -> Result<ResumeOutcome, sqlx::Error> {
        let now = self.now_ms();
        let bucket = now.div_euclid(HOUR_MS) * HOUR_MS;
        let mut tx = self.begin_write().await?;
        let mut all = standings(&mut tx, &self.reputation, Some(&[tenant_id.as_str()]), now).await?;
        let (state, counts, _) = all.remove(tenant_id.as_str()).unwrap_or((None, ReputationCounts::default(), now));
        let current = state.as_ref().map_or(ReputationState::Ok, |s| ReputationState::parse(&s.state));
        if current != ReputationState::Paused {
            tx.rollback().await?;
            return Ok(ResumeOutcome::NotPaused(current));
        }
        // The current hour's figures so far: from now on only more than these count.
        let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT metric, n FROM tenant_stats WHERE tenant_id = $1 AND bucket_start = $2 AND metric IN ({METRICS})"
        ))
        .bind(tenant_id)
        .bind(bucket)
        .fetch_all(&mut *tx)
        .await?;
        let mut base = ReputationCounts::default();
        for (metric, n) in rows {
            add(&mut base, &metric, n);
        }
        let resumed = sqlx::query(
            "UPDATE tenant_reputation SET state = 'ok', changed_at = $2, baseline_at = $2, baseline_bucket = $3, \
               baseline_sent = $4, baseline_delivered = $5, baseline_bounced = $6, baseline_complained = $7 \
             WHERE tenant_id = $1 AND state = 'paused'",
        )
        .bind(tenant_id)
        .bind(now)
        .bind(bucket)
        .bind(base.sent)
        .bind(base.delivered)
        .bind(base.bounced)
        .bind(base.complained)
        .execute(&mut *tx)
        .await?;
        if resumed.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(ResumeOutcome::NotPaused(ReputationState::Ok));
        }
        let reason = match note {
            Some(n) => format!("resumed by the operator: {n}"),
            None => "resumed by the operator".to_owned(),
        };
        let change = Change {
            tenant: tenant_id.as_str(),
            from: ReputationState::Paused,
            to: ReputationState::Ok,
            actor: "admin",
            reason: &reason,
            counts,
            now,
        };
        record_change(&mut tx, &change, self.reputation.alert_operator).await?;
        // Campaign mail held while paused waits up to HOLD_MS for its next look:
        // release it now. The time is read after the update above, which waits
        // for any claim holding the state's lock, so that claim's hold is caught too.
        let now = self.now_ms();
        sqlx::query(
            "UPDATE messages SET due_at = $2 WHERE tenant_id = $1 AND status = 'queued' AND campaign_id IS NOT NULL \
               AND due_at > $2 AND due_at <= $3",
        )
        .bind(tenant_id)
        .bind(now)
        .bind(now + super::outbox::HOLD_MS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::warn!(alert = "reputation_changed", tenant = %tenant_id, from = "paused", to = "ok", actor = "admin",
            "ALERT: a customer's sending was resumed by the operator");
        Ok(ResumeOutcome::Resumed)
    }
}

fn to_reputation(
    tenant_id: &str,
    name: String,
    found: Option<(Option<StateRow>, ReputationCounts, i64)>,
    policy: &ReputationPolicy,
    now: i64,
) -> TenantReputation {
    let (state, counts, window_from) =
        found.unwrap_or_else(|| (None, ReputationCounts::default(), window_start(policy, now)));
    TenantReputation {
        tenant_id: tenant_id.to_owned(),
        name,
        state: state.as_ref().map_or(ReputationState::Ok, |s| ReputationState::parse(&s.state)),
        changed_at: state.as_ref().map(|s| s.changed_at),
        resumed_at: state.as_ref().and_then(|s| s.baseline_at),
        window_from,
        counts,
    }
}

struct Change<'a> {
    tenant: &'a str,
    from: ReputationState,
    to: ReputationState,
    actor: &'a str,
    reason: &'a str,
    counts: ReputationCounts,
    now: i64,
}

/// The history entry of a change and its alerts: to the tenant's subscribed
/// webhooks, and (when configured) to the operator's alert webhook.
async fn record_change(tx: &mut AnyConnection, c: &Change<'_>, alert_operator: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reputation_changes (tenant_id, id, from_state, to_state, actor, reason, sent, delivered, bounced, \
           complained, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(c.tenant)
    .bind(new_id())
    .bind(c.from.as_str())
    .bind(c.to.as_str())
    .bind(c.actor)
    .bind(c.reason)
    .bind(c.counts.sent)
    .bind(c.counts.delivered)
    .bind(c.counts.bounced)
    .bind(c.counts.complained)
    .bind(c.now)
    .execute(&mut *tx)
    .await?;
    let name: Option<String> =
        sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1").bind(c.tenant).fetch_optional(&mut *tx).await?;
    let data = change_data(c, name.as_deref());
    enqueue_tenant_events(tx, c.now, c.tenant, REPUTATION_EVENT, &data).await?;
    if alert_operator {
        // No endpoint: the notifier signs it with MAILROOM_ALERT_WEBHOOK_SECRET
        // and posts it to MAILROOM_ALERT_WEBHOOK_URL.
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_type, payload, status, attempts, \
               next_attempt_at, created_at, updated_at) VALUES ($1, NULL, $2, $3, $4, 'pending', 0, $5, $5, $5)",
        )
        .bind(new_id())
        .bind(c.tenant)
        .bind(REPUTATION_EVENT)
        .bind(webhook_body(REPUTATION_EVENT, &data, c.now))
        .bind(c.now)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

fn change_data(c: &Change<'_>, name: Option<&str>) -> Value {
    json!({
        "customer_id": c.tenant,
        "customer_name": name,
        "from": c.from.as_str(),
        "to": c.to.as_str(),
        "actor": c.actor,
        "reason": c.reason,
        "changed_at": rfc3339(c.now),
        "campaigns_paused": c.to == ReputationState::Paused,
        "window": {
            "sent": c.counts.sent,
            "delivered": c.counts.delivered,
            "hard_bounces": c.counts.bounced,
            "complaints": c.counts.complained,
            "bounce_rate": c.counts.bounce_rate(),
            "complaint_rate": c.counts.complaint_rate(),
        },
    })
}
