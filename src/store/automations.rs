//! Automations: rules, and their runs. Event ingestion writes a run for each
//! enabled rule an event triggers, in the event's own transaction, with one
//! unique key per (rule, message, event type): a rule fires at most once per
//! email and event type, whatever the provider retries. A rule's local
//! actions (tags, suppression, alerts) are carried out there too, set-based
//! for the group; what remains (emails, delays, the agent) makes the runs a
//! durable queue the worker claims under a lease, like the outbox's batches.

use std::collections::HashMap;

use sqlx::{AnyConnection, FromRow};

use super::enqueue::{insert_single, NewSingle};
use super::lease::{lease, AUTOMATION_RUNS};
use super::{native_sql, placeholders, Placeholders, Store, WriteTx, DAY_MS};
use crate::domain::automation::{starter_rules, Rule};
use crate::domain::delivery_event::{triggered_runs, Applied, RuleTrigger, TriggeredRun};
use crate::domain::{new_id, strip_header_unsafe, TenantId};

mod inline;

/// A stored rule.
#[derive(Clone, Debug, FromRow)]
pub struct AutomationRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub enabled: i64,
    pub definition: String,
    pub starter: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl AutomationRow {
    pub fn rule(&self) -> Result<Rule, serde_json::Error> {
        serde_json::from_str(&self.definition)
    }
}

/// A rule to store: name, enabled, and its parsed (validated) definition.
pub struct NewAutomation<'a> {
    pub name: &'a str,
    pub enabled: bool,
    pub rule: &'a Rule,
}

/// One firing of a rule, as the runs listing shows it.
#[derive(Clone, Debug, FromRow)]
pub struct RunRow {
    pub id: String,
    pub automation_id: String,
    pub message_id: String,
    pub event_type: String,
    pub svix_id: String,
    pub campaign_id: Option<String>,
    pub contact_id: Option<String>,
    pub link: Option<String>,
    pub status: String,
    pub step: i64,
    pub due_at: i64,
    pub attempts: i64,
    pub log: String,
    pub tool: Option<String>,
    pub arguments: Option<String>,
    pub reason: Option<String>,
    pub outcome: Option<String>,
    pub latency_ms: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Tokens the model reported for the agent's decision.
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
}

/// A run claimed by a worker, with its rule.
#[derive(Clone, Debug, FromRow)]
pub struct ClaimedRun {
    pub id: String,
    pub automation_id: String,
    pub tenant_id: String,
    pub message_id: String,
    pub event_type: String,
    pub campaign_id: Option<String>,
    pub contact_id: Option<String>,
    pub link: Option<String>,
    pub step: i64,
    pub waited: i64,
    pub attempts: i64,
    pub log: String,
    pub claim_token: String,
    pub enabled: i64,
    pub definition: String,
}

/// Where a run goes after a step.
#[derive(Debug)]
pub enum RunProgress<'a> {
    /// Carry on later from `step` at `due_at` (a delay; `waited` = the delay is the one before `step`).
    Wait { step: i64, due_at: i64 },
    /// Try again at `due_at` after a transient failure.
    Retry { due_at: i64, error: &'a str },
    /// Finished: `done`, `skipped`, `cancelled` or `failed`.
    End { status: &'a str },
}

/// The agent's decision, for the run's record.
#[derive(Debug, Default)]
pub struct AgentDecision {
    pub tool: Option<String>,
    pub arguments: Option<String>,
    pub reason: Option<String>,
    pub outcome: String,
    pub latency_ms: i64,
    /// Tokens the answer used (`usage`: input, output), when the model answered.
    pub usage: Option<(i64, i64)>,
}

/// What a rule's run knows of the message that triggered it.
#[derive(Clone, Debug, FromRow)]
pub struct RunMessage {
    pub id: String,
    pub tenant_id: String,
    pub to_email: String,
    pub first_name: Option<String>,
    pub delivered: i64,
    /// The rule that sent this message, when an automation did.
    pub automation_id: Option<String>,
}

/// A contact as the agent sees it: no address, no name.
#[derive(Clone, Debug, Default)]
pub struct Engagement {
    pub opens: i64,
    pub clicks: i64,
}

/// [`RunMessage`]s, to be narrowed by a `WHERE` on `messages m`.
const RUN_MESSAGE: &str = "SELECT m.id, m.tenant_id, m.to_email, m.first_name, m.automation_id, \
       (SELECT COUNT(*) FROM message_firsts f WHERE f.tenant_id = m.tenant_id AND f.message_id = m.id \
          AND f.kind = 'delivered') AS delivered \
     FROM messages m";

const RUN_COLUMNS: &str = "id, automation_id, message_id, event_type, svix_id, campaign_id, contact_id, link, status, \
     step, due_at, attempts, log, tool, arguments, reason, outcome, latency_ms, created_at, updated_at, \
     input_tokens, output_tokens";
const AUTOMATION_COLUMNS: &str = "id, tenant_id, name, enabled, definition, starter, created_at, updated_at";

/// Fires every enabled rule each applied event triggers, inside the events'
/// transaction: one indexed query finds the group's tenants' rules (with none,
/// that is all it costs). A rule whose first actions are local (tags,
/// suppression, alerts) has them carried out here, for the whole group in one
/// statement per kind of effect ([`inline::carry_out`]), and its run is
/// written finished (or, with a `send_template` after them, pending at that
/// step); the others' runs are queued for the worker, one insert per 500. The
/// unique key on (rule, message, event type) drops repeats either way.
/// `tenants`: those with an event that can trigger a rule; which rules fire is
/// [`triggered_runs`]'s. `suppressed`: (tenant, address) pairs the group's
/// events suppressed already in this transaction (not read again).
pub(super) async fn fire_rules(
    tx: &mut AnyConnection,
    tenants: &[&str],
    applied: &[Applied<'_>],
    suppressed: &[(&str, &str)],
    now: i64,
) -> Result<(), sqlx::Error> {
    if tenants.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT id, tenant_id, trigger_event, trigger_campaign, trigger_link, wait_ms, definition FROM automations \
         WHERE tenant_id IN ({}) AND enabled = 1",
        placeholders(1, tenants.len())
    );
    let sql = native_sql(tx, &sql);
    let mut q = sqlx::query_as::<_, RuleTrigger>(&sql);
    for t in tenants {
        q = q.bind(*t);
    }
    let rules = q.fetch_all(&mut *tx).await?;
    if rules.is_empty() {
        return Ok(());
    }
    let runs = triggered_runs(applied, &rules, now);
    // The definitions of the rules that fired, read once each.
    let mut parsed: HashMap<&str, Option<Rule>> = HashMap::new();
    for r in &runs {
        parsed.entry(r.rule.id.as_str()).or_insert_with(|| serde_json::from_str(&r.rule.definition).ok());
    }
    let (inline, queued): (Vec<&TriggeredRun>, Vec<&TriggeredRun>) = runs
        .iter()
        .partition(|r| parsed.get(r.rule.id.as_str()).and_then(Option::as_ref).is_some_and(|d| d.inline_actions() > 0));
    queue_runs(tx, &queued, now).await?;
    inline::carry_out(tx, &inline, &parsed, suppressed, now).await
}

/// Queues runs for the worker, due when their rule says.
async fn queue_runs(tx: &mut AnyConnection, runs: &[&TriggeredRun<'_>], now: i64) -> Result<(), sqlx::Error> {
    for chunk in runs.chunks(500) {
        // Every parameter once, in order (`now` bound per row): see `native_sql`.
        let mut p = Placeholders::after(0);
        let rows: Vec<String> = chunk.iter().map(|_| format!("({}, 'pending', {})", p.list(10), p.list(2))).collect();
        let sql = format!(
            "INSERT INTO automation_runs (id, automation_id, tenant_id, message_id, event_type, svix_id, campaign_id, \
               contact_id, link, due_at, status, created_at, updated_at) VALUES {} \
             ON CONFLICT (automation_id, message_id, event_type) DO NOTHING",
            rows.join(", ")
        );
        let sql = native_sql(tx, &sql);
        let mut q = sqlx::query(&sql);
        for TriggeredRun { rule: r, event: e, target: m, due_at: due } in chunk.iter().copied() {
            q = q
                .bind(new_id())
                .bind(&r.id)
                .bind(&m.tenant_id)
                .bind(&m.id)
                .bind(&e.event_type)
                .bind(&e.svix_id)
                .bind(&m.campaign_id)
                .bind(&m.contact_id)
                .bind(&e.link)
                .bind(*due)
                .bind(now)
                .bind(now);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

/// The starter rules, disabled, for a new tenant inside `tx`.
pub(super) async fn insert_starters(
    tx: &mut WriteTx,
    tenant_id: &TenantId,
    follow_up_template: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    for (key, name, rule) in starter_rules(follow_up_template) {
        insert_automation(
            tx,
            tenant_id,
            &new_id(),
            &NewAutomation { name, enabled: false, rule: &rule },
            Some(key),
            now,
        )
        .await?;
    }
    Ok(())
}

async fn insert_automation(
    tx: &mut WriteTx,
    tenant_id: &TenantId,
    id: &str,
    a: &NewAutomation<'_>,
    starter: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO automations (id, tenant_id, name, enabled, trigger_event, trigger_campaign, trigger_link, wait_ms, \
           definition, starter, created_at, updated_at, uses_agent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(a.name)
    .bind(i64::from(a.enabled))
    .bind(&a.rule.trigger.event)
    .bind(&a.rule.trigger.campaign_id)
    .bind(&a.rule.trigger.link)
    .bind(a.rule.wait_ms())
    .bind(serde_json::to_string(a.rule).unwrap_or_default())
    .bind(starter)
    .bind(now)
    .bind(i64::from(a.rule.uses_agent()))
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

impl Store {
    /// Adds a rule unless the tenant has `max` already (`None`). The count and
    /// the insert are one transaction, with the tenant's row locked on
    /// PostgreSQL, so concurrent creations cannot pass the limit.
    pub async fn create_automation(
        &self,
        tenant_id: &TenantId,
        a: &NewAutomation<'_>,
        max: usize,
    ) -> Result<Option<String>, sqlx::Error> {
        let id = new_id();
        let mut tx = self.begin_write().await?;
        if !tx.below_limit("automations", tenant_id.as_str(), max).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        insert_automation(&mut tx, tenant_id, &id, a, None, self.now_ms()).await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    pub async fn automations(&self, tenant_id: &TenantId) -> Result<Vec<AutomationRow>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {AUTOMATION_COLUMNS} FROM automations WHERE tenant_id = $1 ORDER BY id"))
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
    }

    pub async fn automation(&self, tenant_id: &TenantId, id: &str) -> Result<Option<AutomationRow>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {AUTOMATION_COLUMNS} FROM automations WHERE tenant_id = $1 AND id = $2"))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Replaces a rule's name, switch and definition (the caller merged the patch).
    pub async fn update_automation(
        &self,
        tenant_id: &TenantId,
        id: &str,
        a: &NewAutomation<'_>,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE automations SET name = $3, enabled = $4, trigger_event = $5, trigger_campaign = $6, \
               trigger_link = $7, wait_ms = $8, definition = $9, updated_at = $10, uses_agent = $11 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(a.name)
        .bind(i64::from(a.enabled))
        .bind(&a.rule.trigger.event)
        .bind(&a.rule.trigger.campaign_id)
        .bind(&a.rule.trigger.link)
        .bind(a.rule.wait_ms())
        .bind(serde_json::to_string(a.rule).unwrap_or_default())
        .bind(self.now_ms())
        .bind(i64::from(a.rule.uses_agent()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a rule; its runs go with it, pending ones included.
    pub async fn delete_automation(&self, tenant_id: &TenantId, id: &str) -> Result<bool, sqlx::Error> {
        self.delete_owned("automations", tenant_id, id).await
    }

    /// A rule's runs, newest first; `before` is the last id of the previous page.
    pub async fn automation_runs(
        &self,
        automation_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RunRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {RUN_COLUMNS} FROM automation_runs WHERE automation_id = $1 AND ($2 = '' OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(automation_id)
        .bind(before.unwrap_or(""))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
    }

    /// Claims up to `max` due runs of rules without an `agent` action (those
    /// are the agent lane's: [`Store::claim_agent_run`]) for `lease_ms` under one fresh token.
    pub async fn claim_runs(&self, lease_ms: i64, max: i64) -> Result<Vec<ClaimedRun>, sqlx::Error> {
        let now = self.now_ms();
        if !self.any_due(&AUTOMATION_RUNS, now).await? {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let mut rows: Vec<ClaimedRun> = sqlx::query_as(&self.due_rows_sql(
            &AUTOMATION_RUNS,
            "SELECT r.id, r.automation_id, r.tenant_id, r.message_id, r.event_type, r.campaign_id, r.contact_id, \
               r.link, r.step, r.waited, r.attempts, r.log, '' AS claim_token, a.enabled, a.definition \
             FROM automation_runs r JOIN automations a ON a.id = r.automation_id AND a.uses_agent = 0",
        ))
        .bind(now)
        .bind(max)
        .fetch_all(&mut *tx)
        .await?;
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let token = lease(&mut tx, &AUTOMATION_RUNS, &ids, lease_ms, now).await?;
        tx.commit().await?;
        for r in &mut rows {
            r.claim_token.clone_from(&token);
        }
        Ok(rows)
    }

    /// Records a run's progress while its claim holds: the log so far, and
    /// where it goes next. False if the claim was lost.
    pub async fn save_run(&self, run: &ClaimedRun, log: &str, next: RunProgress<'_>) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let saved = save_run_in(&mut tx, now, run, log, next).await?;
        tx.commit().await?;
        Ok(saved)
    }

    /// Opens one write for several claimed runs' local actions (tags,
    /// suppressions, alerts) and their ends: see [`RunBatch`].
    pub async fn run_batch(&self) -> Result<RunBatch, sqlx::Error> {
        Ok(RunBatch { tx: self.begin_write().await? })
    }

    /// These contacts, by id (the caller checks each one's tenant).
    pub async fn contacts_by_ids(
        &self,
        ids: &[&str],
    ) -> Result<std::collections::HashMap<String, crate::store::ContactRow>, sqlx::Error> {
        let mut found = std::collections::HashMap::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT {} FROM contacts c WHERE c.id IN ({})",
                super::contacts::CONTACT_COLUMNS,
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, crate::store::ContactRow>(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            found.extend(q.fetch_all(&self.pool).await?.into_iter().map(|c| (c.id.clone(), c)));
        }
        Ok(found)
    }

    /// [`Store::run_message`] of several messages, by id (the caller checks each one's tenant).
    pub async fn run_messages(
        &self,
        ids: &[&str],
    ) -> Result<std::collections::HashMap<String, RunMessage>, sqlx::Error> {
        let mut found = std::collections::HashMap::new();
        for chunk in ids.chunks(500) {
            let sql = format!("{RUN_MESSAGE} WHERE m.id IN ({})", placeholders(1, chunk.len()));
            let mut q = sqlx::query_as::<_, RunMessage>(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            found.extend(q.fetch_all(&self.pool).await?.into_iter().map(|m| (m.id.clone(), m)));
        }
        Ok(found)
    }

    /// Records the step reached (after each action), so a run taken over after
    /// a crash does not repeat what is done.
    pub async fn advance_run(&self, run: &ClaimedRun, step: i64, log: &str) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE automation_runs SET step = $3, waited = 0, log = $4, updated_at = $5 WHERE id = $1 AND claim_token = $2",
        )
        .bind(&run.id)
        .bind(&run.claim_token)
        .bind(step)
        .bind(log)
        .bind(self.now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn record_agent_decision(&self, run: &ClaimedRun, d: &AgentDecision) -> Result<(), sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        if let Some((input, output)) = d.usage {
            // The tenant's running total, by the day the answer came.
            sqlx::query(
                "INSERT INTO agent_usage (tenant_id, day, calls, input_tokens, output_tokens) VALUES ($1, $2, 0, $3, $4) \
                 ON CONFLICT (tenant_id, day) DO UPDATE SET input_tokens = agent_usage.input_tokens + $3, \
                   output_tokens = agent_usage.output_tokens + $4",
            )
            .bind(&run.tenant_id)
            .bind(now / DAY_MS)
            .bind(input)
            .bind(output)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE automation_runs SET tool = $3, arguments = $4, reason = $5, outcome = $6, latency_ms = $7, \
               input_tokens = $8, output_tokens = $9 WHERE id = $1 AND claim_token = $2",
        )
        .bind(&run.id)
        .bind(&run.claim_token)
        .bind(d.tool.as_deref().map(|t| strip_header_unsafe(t).into_owned()))
        .bind(d.arguments.as_deref().map(|t| strip_header_unsafe(t).into_owned()))
        .bind(d.reason.as_deref().map(|t| strip_header_unsafe(t).into_owned()))
        .bind(strip_header_unsafe(&d.outcome).into_owned())
        .bind(d.latency_ms)
        .bind(d.usage.map(|u| u.0))
        .bind(d.usage.map(|u| u.1))
        .execute(&mut *tx)
        .await?;
        tx.commit().await.map(|_| ())
    }

    /// The triggering message's address and name, and whether it was delivered.
    pub async fn run_message(&self, tenant_id: &str, message_id: &str) -> Result<Option<RunMessage>, sqlx::Error> {
        sqlx::query_as(&format!("{RUN_MESSAGE} WHERE m.tenant_id = $1 AND m.id = $2"))
            .bind(tenant_id)
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await
    }

    /// A contact's opens and clicks (events, not unique).
    pub async fn engagement(&self, tenant_id: &str, contact_id: &str) -> Result<Engagement, sqlx::Error> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT event_type, COUNT(*) FROM webhook_events WHERE tenant_id = $1 AND contact_id = $2 \
               AND event_type IN ('email.opened', 'email.clicked') GROUP BY event_type",
        )
        .bind(tenant_id)
        .bind(contact_id)
        .fetch_all(&self.pool)
        .await?;
        let count = |t: &str| rows.iter().find(|(k, _)| k == t).map_or(0, |(_, n)| *n);
        Ok(Engagement { opens: count("email.opened"), clicks: count("email.clicked") })
    }

    /// Books one of the tenant's agent-initiated sends for `day` if fewer than
    /// `cap` are booked: one conditional upsert, so concurrent runs cannot exceed it.
    pub async fn take_agent_send(&self, tenant_id: &str, day: i64, cap: i64) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let booked: Option<i64> = sqlx::query_scalar(
            "INSERT INTO agent_sends (tenant_id, day, n) VALUES ($1, $2, 1) \
             ON CONFLICT (tenant_id, day) DO UPDATE SET n = agent_sends.n + 1 WHERE agent_sends.n < $3 RETURNING n",
        )
        .bind(tenant_id)
        .bind(day)
        .bind(cap)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(booked.is_some_and(|n| n <= cap))
    }

    /// Gives back a booked agent send that was not made.
    pub async fn return_agent_send(&self, tenant_id: &str, day: i64) -> Result<(), sqlx::Error> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE agent_sends SET n = n - 1 WHERE tenant_id = $1 AND day = $2 AND n > 0")
            .bind(tenant_id)
            .bind(day)
            .execute(&mut *tx)
            .await?;
        tx.commit().await.map(|_| ())
    }

    /// Queues a rule's email unless this rule already mailed this contact for
    /// this scope (campaign): the mark and the message commit together.
    /// Returns whether the email was queued.
    pub async fn enqueue_automation_send(
        &self,
        tenant_id: &TenantId,
        automation_id: &str,
        contact_key: &str,
        scope: &str,
        m: &NewSingle,
    ) -> Result<bool, sqlx::Error> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let marked = sqlx::query(
            "INSERT INTO automation_sends (automation_id, contact_key, scope, message_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (automation_id, contact_key, scope) DO NOTHING",
        )
        .bind(automation_id)
        .bind(contact_key)
        .bind(scope)
        .bind(&m.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_single(&mut tx, tenant_id, m, now, false).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// A campaign none of whose messages is waiting or in flight any more.
#[derive(Debug, FromRow)]
struct Finished {
    id: String,
    tenant_id: String,
    recipient_count: i64,
    cancelled: i64,
}

impl Store {
    /// Tells tenants' webhooks (`campaign.sent`) about campaigns that finished
    /// sending since the last call, each once (the mark and the notification
    /// commit together, so several workers can call this). Cancelled campaigns
    /// are marked without a notification. Returns how many were marked.
    pub async fn notify_finished_campaigns(&self, max: i64) -> Result<usize, sqlx::Error> {
        let finished: Vec<Finished> = sqlx::query_as(
            "SELECT c.id, c.tenant_id, c.recipient_count, \
               CASE WHEN c.state = 'cancelled' THEN 1 ELSE 0 END AS cancelled FROM campaigns c \
             WHERE c.sent_notified_at IS NULL \
               AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.campaign_id = c.id AND m.status = 'queued') \
               AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.status IN ('sending', 'paused') AND m.campaign_id = c.id) \
             ORDER BY c.created_at LIMIT $1",
        )
        .bind(max)
        .fetch_all(&self.pool)
        .await?;
        let mut marked = 0;
        for c in finished {
            let dead: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM messages WHERE tenant_id = $1 AND campaign_id = $2 AND status = 'dead'",
            )
            .bind(&c.tenant_id)
            .bind(&c.id)
            .fetch_one(&self.pool)
            .await?;
            let mut tx = self.begin_write().await?;
            let now = tx.now;
            let mark =
                sqlx::query("UPDATE campaigns SET sent_notified_at = $2 WHERE id = $1 AND sent_notified_at IS NULL")
                    .bind(&c.id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            if mark.rows_affected() == 1 && c.cancelled == 0 {
                let status = match dead {
                    0 => "sent",
                    d if d >= c.recipient_count => "failed",
                    _ => "partially_failed",
                };
                let data = serde_json::json!({
                    "campaign_id": c.id,
                    "status": status,
                    "recipients": c.recipient_count,
                    "sent": c.recipient_count - dead,
                    "dead_letters": dead,
                });
                super::enqueue_tenant_events(&mut tx, now, &c.tenant_id, "campaign.sent", &data).await?;
            }
            tx.commit().await?;
            marked += 1;
        }
        Ok(marked)
    }
}

/// [`Store::save_run`] inside `tx`.
async fn save_run_in(
    tx: &mut AnyConnection,
    now: i64,
    run: &ClaimedRun,
    log: &str,
    next: RunProgress<'_>,
) -> Result<bool, sqlx::Error> {
    let (status, step, waited, due_at, attempts, error) = match next {
        RunProgress::Wait { step, due_at } => ("pending", step, 1, due_at, run.attempts, None),
        RunProgress::Retry { due_at, error } => {
            ("pending", run.step, run.waited, due_at, run.attempts + 1, Some(error))
        }
        RunProgress::End { status } => (status, run.step, run.waited, now, run.attempts, None),
    };
    let done = sqlx::query(
        "UPDATE automation_runs SET status = $3, step = $4, waited = $5, due_at = $6, attempts = $7, log = $8, \
           outcome = COALESCE($9, outcome), claim_token = NULL, updated_at = $10 \
         WHERE id = $1 AND claim_token = $2",
    )
    .bind(&run.id)
    .bind(&run.claim_token)
    .bind(status)
    .bind(step)
    .bind(waited)
    .bind(due_at)
    .bind(attempts)
    .bind(log)
    .bind(error)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One write transaction for the local actions of claimed runs (tags,
/// suppressions, alerts) and the runs' ends: a group of runs costs one commit
/// rather than two each, and the actions and the end of each run commit
/// together, so a run is never half done. Dropped without
/// [`RunBatch::commit`], nothing of it happened.
pub struct RunBatch {
    tx: WriteTx,
}

impl RunBatch {
    /// Which of these runs are still claimed by their token, locked (on
    /// PostgreSQL) until the batch ends: only those may act.
    pub async fn still_claimed(
        &mut self,
        runs: &[&ClaimedRun],
    ) -> Result<std::collections::HashSet<String>, sqlx::Error> {
        let lock = if self.tx.backend_name().eq_ignore_ascii_case("postgresql") { " FOR UPDATE" } else { "" };
        let mut held = std::collections::HashSet::new();
        for chunk in runs.chunks(500) {
            let sql = format!(
                "SELECT id, claim_token FROM automation_runs WHERE id IN ({}){lock}",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (String, Option<String>)>(&sql);
            for r in chunk {
                q = q.bind(&r.id);
            }
            for (id, token) in q.fetch_all(&mut *self.tx).await? {
                if chunk.iter().any(|r| r.id == id && token.as_deref() == Some(r.claim_token.as_str())) {
                    held.insert(id);
                }
            }
        }
        Ok(held)
    }

    /// [`Store::set_contact_tag`] in this batch.
    pub async fn set_contact_tag(
        &mut self,
        tenant_id: &TenantId,
        contact_id: &str,
        tag: &crate::domain::Tag,
        present: bool,
    ) -> Result<Option<bool>, sqlx::Error> {
        let now = self.tx.now;
        super::contacts::set_tag_in(&mut self.tx, now, tenant_id.as_str(), contact_id, tag, present).await
    }

    /// [`Store::add_suppressions`] in this batch.
    pub async fn add_suppressions(
        &mut self,
        tenant_id: &TenantId,
        emails: &[String],
        reason: &str,
        source: &str,
    ) -> Result<u64, sqlx::Error> {
        let now = self.tx.now;
        super::suppressions::add_suppressions_in(&mut self.tx, now, tenant_id.as_str(), emails, reason, source).await
    }

    /// [`Store::enqueue_tenant_events`] in this batch.
    pub async fn enqueue_tenant_events(
        &mut self,
        tenant_id: &TenantId,
        event_type: &str,
        data: &serde_json::Value,
    ) -> Result<u64, sqlx::Error> {
        let now = self.tx.now;
        super::enqueue_tenant_events(&mut self.tx, now, tenant_id.as_str(), event_type, data).await
    }

    /// [`Store::save_run`] in this batch.
    pub async fn save_run(&mut self, run: &ClaimedRun, log: &str, next: RunProgress<'_>) -> Result<bool, sqlx::Error> {
        let now = self.tx.now;
        save_run_in(&mut self.tx, now, run, log, next).await
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}
