//! The automation engine: claims the runs event ingestion queued and carries
//! out each rule's actions in order, beside the outbox and never in a webhook
//! request. A run is durable: a delayed action parks it (`due_at` in the
//! future) and it is claimed again when due, after a restart too; every step
//! done is recorded before the next, so a run taken over from a dead worker
//! does not repeat what was done.

pub mod agent;
mod agent_lane;

pub use agent_lane::AgentRuns;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::domain::automation::effects::normalized;
use crate::domain::automation::{Action, Rule};
use crate::domain::{now_ms, Tag, TenantId};
use crate::llm::LlmClient;
use crate::store::{ClaimedRun, RunBatch, RunProgress, Store};

/// How long claimed runs stay their worker's: they run one after another, each
/// possibly waiting for the model (`MAILROOM_LLM_TIMEOUT_MS`).
const LEASE_MS: i64 = 600_000;
/// Runs claimed per step (those with only local actions left are done in one
/// transaction; the others one after another, each possibly waiting for the
/// model, within the lease).
const CLAIM: i64 = 32;
/// How often finished campaigns are looked for (`campaign.sent`).
const CAMPAIGN_SWEEP: Duration = Duration::from_secs(1);
/// Attempts at a run that keeps failing on errors (the database's, say).
const MAX_ATTEMPTS: i64 = 5;

#[derive(Clone)]
pub struct Engine {
    store: Store,
    /// Wakes the outbox when an action queues an email.
    wake: Arc<Notify>,
    llm: Option<LlmClient>,
    agent_daily_cap: i64,
    /// Model calls a tenant may make a day, unless the operator set its own figure.
    agent_daily_calls: i64,
    /// Agent runs carried out at once in this process ([`AgentRuns`]).
    agent_concurrency: usize,
}

/// One action's result.
#[derive(Debug)]
pub(crate) enum Outcome {
    Done(String),
    /// Nothing to do (already done, no contact, ...): the run goes on.
    Skipped(String),
    /// The recipient cannot be mailed any more: a delayed send is cancelled.
    Unmailable(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Self::Done(_) => "done",
            Self::Skipped(_) => "skipped",
            Self::Unmailable(_) => "cancelled",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Self::Done(d) | Self::Skipped(d) | Self::Unmailable(d) => d,
        }
    }
}

/// What the actions of one run act on: the event and its contact.
pub(crate) struct Subject<'a> {
    pub run: &'a ClaimedRun,
    pub tenant: TenantId,
    pub contact: Option<crate::store::ContactRow>,
    /// The triggering message (address, sender rule, delivered), read once per run step.
    pub message: Option<crate::store::RunMessage>,
}

impl Engine {
    pub fn new(store: Store, wake: Arc<Notify>, config: &crate::config::Config) -> anyhow::Result<Self> {
        let llm = match &config.llm {
            Some(s) => {
                Some(LlmClient::new(s.api, &s.url, s.api_key.clone(), &s.model, Duration::from_millis(s.timeout_ms))?)
            }
            None => None,
        };
        Ok(Self {
            store,
            wake,
            llm,
            agent_daily_cap: i64::from(config.agent_daily_cap),
            agent_daily_calls: i64::from(config.agent_daily_calls),
            agent_concurrency: config.agent_concurrency.max(1),
        })
    }

    /// The agent lane of this engine: the runs of rules with an `agent`
    /// action, which [`Engine::step`] leaves alone.
    pub fn agent_runs(&self) -> AgentRuns {
        AgentRuns::new(self.clone())
    }

    /// Claims the due runs of rules without an `agent` action (those wait for
    /// no model: the agent lane, [`AgentRuns`], has the others) and carries
    /// them out one after another: a rule's actions are writes, and running
    /// many side by side would crowd event ingestion out of the database (on
    /// SQLite, out of its one writer); a backlog of runs can wait a little, a
    /// webhook should not. Returns how many.
    pub async fn step(&self) -> anyhow::Result<usize> {
        let runs = self.store.claim_runs(LEASE_MS, CLAIM).await?;
        let n = runs.len();
        let (local, others): (Vec<ClaimedRun>, Vec<ClaimedRun>) = runs.into_iter().partition(only_local_left);
        let mut one_by_one = others;
        if !local.is_empty() {
            if let Err(e) = self.execute_local(&local).await {
                // Nothing of the batch happened: each run goes its own way, with retries.
                tracing::warn!(runs = local.len(), error = ?e, "automation runs could not be done together; one by one");
                one_by_one.extend(local);
            }
        }
        for run in one_by_one {
            self.run_one(&run).await;
            tokio::task::yield_now().await;
        }
        Ok(n)
    }

    /// Carries out one claimed run; on an error, it is retried after a backoff
    /// (or ends `failed` after [`MAX_ATTEMPTS`]).
    async fn run_one(&self, run: &ClaimedRun) {
        if let Err(e) = self.execute(run).await {
            tracing::warn!(run = %run.id, error = ?e, "automation run failed; retried");
            let backoff = 1_000 * (1_i64 << run.attempts.clamp(0, 10));
            let next = if run.attempts + 1 >= MAX_ATTEMPTS {
                RunProgress::End { status: "failed" }
            } else {
                RunProgress::Retry { due_at: self.store.now_ms() + backoff, error: "an error occurred; retried" }
            };
            if let Err(e) = self.store.save_run(run, &run.log, next).await {
                tracing::error!(run = %run.id, error = ?e, "could not record a failed automation run");
            }
        }
    }

    /// Carries out runs whose remaining actions are all local writes (tags,
    /// suppressions, alerts: no email, no model, no delay) in one transaction,
    /// each run's actions and its end together: the common rule costs a share
    /// of one commit instead of two commits of its own. Their contacts and
    /// messages are read in two queries. A run whose claim was lost is left to
    /// its new owner.
    async fn execute_local(&self, runs: &[ClaimedRun]) -> anyhow::Result<()> {
        let contact_ids: Vec<&str> = runs.iter().filter_map(|r| r.contact_id.as_deref()).collect();
        let message_ids: Vec<&str> = runs.iter().map(|r| r.message_id.as_str()).collect();
        let contacts = self.store.contacts_by_ids(&contact_ids).await?;
        let messages = self.store.run_messages(&message_ids).await?;
        let mut batch = self.store.run_batch().await?;
        let refs: Vec<&ClaimedRun> = runs.iter().collect();
        let held = batch.still_claimed(&refs).await?;
        for run in runs.iter().filter(|r| held.contains(&r.id)) {
            let mut log: Vec<Value> = serde_json::from_str(&run.log).unwrap_or_default();
            let status = match serde_json::from_str::<Rule>(&run.definition) {
                _ if run.enabled == 0 => {
                    log.push(entry(None, "skipped", "the rule was disabled before it ran"));
                    "skipped"
                }
                Err(e) => {
                    log.push(entry(None, "failed", &format!("the stored rule cannot be read: {e}")));
                    "failed"
                }
                Ok(rule) => {
                    let subject = Subject {
                        run,
                        tenant: TenantId::from_stored(run.tenant_id.clone()),
                        contact: run
                            .contact_id
                            .as_ref()
                            .and_then(|id| contacts.get(id))
                            .filter(|c| c.tenant_id == run.tenant_id)
                            .cloned(),
                        message: messages.get(&run.message_id).filter(|m| m.tenant_id == run.tenant_id).cloned(),
                    };
                    match self.unmet_condition(&rule, &subject).await? {
                        Some(reason) if run.step == 0 && run.waited == 0 => {
                            log.push(entry(None, "skipped", &reason));
                            "skipped"
                        }
                        _ => {
                            let first = usize::try_from(run.step).unwrap_or(usize::MAX);
                            for action in rule.actions.iter().skip(first) {
                                let outcome = act_local(&mut batch, &subject, action).await?;
                                log.push(entry(Some(action), outcome.label(), outcome.detail()));
                            }
                            "done"
                        }
                    }
                }
            };
            batch.save_run(run, &Value::Array(log).to_string(), RunProgress::End { status }).await?;
        }
        batch.commit().await?;
        Ok(())
    }

    async fn execute(&self, run: &ClaimedRun) -> anyhow::Result<()> {
        let mut log: Vec<Value> = serde_json::from_str(&run.log).unwrap_or_default();
        let end = |log: &Vec<Value>, status| {
            let log = Value::Array(log.clone()).to_string();
            async move { self.store.save_run(run, &log, RunProgress::End { status }).await }
        };
        if run.enabled == 0 {
            log.push(entry(None, "skipped", "the rule was disabled before it ran"));
            end(&log, "skipped").await?;
            return Ok(());
        }
        let rule: Rule = match serde_json::from_str(&run.definition) {
            Ok(r) => r,
            Err(e) => {
                log.push(entry(None, "failed", &format!("the stored rule cannot be read: {e}")));
                end(&log, "failed").await?;
                return Ok(());
            }
        };
        let tenant = TenantId::from_stored(run.tenant_id.clone());
        let contact = match &run.contact_id {
            Some(id) => self.store.contact(&tenant, id).await?,
            None => None,
        };
        let message = self.store.run_message(&run.tenant_id, &run.message_id).await?;
        let subject = Subject { run, tenant, contact, message };
        if run.step == 0 && run.waited == 0 {
            if let Some(reason) = self.unmet_condition(&rule, &subject).await? {
                log.push(entry(None, "skipped", &reason));
                end(&log, "skipped").await?;
                return Ok(());
            }
        }
        let first = usize::try_from(run.step).unwrap_or(usize::MAX);
        for (i, action) in rule.actions.iter().enumerate().skip(first) {
            let step = i64::try_from(i).unwrap_or(i64::MAX);
            let resumed = step == run.step && run.waited == 1;
            let delay = action.delay_ms();
            if delay > 0 && !resumed {
                let due_at = self.store.now_ms() + delay;
                log.push(entry(Some(action), "waiting", &format!("until {}", crate::domain::rfc3339(due_at))));
                let log = Value::Array(log).to_string();
                self.store.save_run(run, &log, RunProgress::Wait { step, due_at }).await?;
                return Ok(());
            }
            if resumed {
                // The "waiting" entry is replaced by what happened.
                if log.last().and_then(|e| e.get("outcome")).and_then(Value::as_str) == Some("waiting") {
                    log.pop();
                }
            }
            let outcome = match action {
                Action::Agent { .. } => agent::decide(self, &subject, &rule, action).await?,
                other => self.act(&subject, other, false).await?,
            };
            log.push(entry(Some(action), outcome.label(), outcome.detail()));
            if matches!(outcome, Outcome::Unmailable(_)) && resumed {
                end(&log, "cancelled").await?;
                return Ok(());
            }
            if i + 1 == rule.actions.len() {
                break; // The last action: the run ends below, in one write.
            }
            let next = Value::Array(log.clone()).to_string();
            if !self.store.advance_run(run, step + 1, &next).await? {
                return Ok(()); // The claim was lost; its new owner carries on.
            }
        }
        end(&log, "done").await?;
        Ok(())
    }

    /// Why the rule does not apply after all, if it does not: the contact lacks
    /// the trigger's tag, or a delayed message was delivered within the wait.
    async fn unmet_condition(&self, rule: &Rule, s: &Subject<'_>) -> anyhow::Result<Option<String>> {
        if let Some(tag) = &rule.trigger.tag {
            let has = s.contact.as_ref().is_some_and(|c| contact_tags(c).iter().any(|t| t == tag));
            if !has {
                return Ok(Some(format!("the contact does not have the tag `{tag}`")));
            }
        }
        if rule.trigger.event == "email.delivery_delayed" {
            let delivered = s.message.as_ref().is_some_and(|m| m.delivered > 0);
            if delivered {
                let hours = rule.trigger.no_delivery_within_hours.unwrap_or_default();
                return Ok(Some(format!("the email was delivered within {hours} h")));
            }
        }
        Ok(None)
    }

    /// Carries out one (non-agent) action. `by_agent`: the daily cap applies.
    pub(crate) async fn act(&self, s: &Subject<'_>, action: &Action, by_agent: bool) -> anyhow::Result<Outcome> {
        match action {
            Action::SendTemplate { template_id, topic_id, .. } => {
                self.send_template(s, template_id, topic_id.as_deref(), by_agent).await
            }
            Action::Agent { .. } => Ok(Outcome::Skipped("an agent cannot call an agent".into())),
            local => {
                let mut batch = self.store.run_batch().await?;
                let outcome = act_local(&mut batch, s, local).await?;
                batch.commit().await?;
                Ok(outcome)
            }
        }
    }

    /// Queues `template_id` to the event's recipient; about `topic_id`, or
    /// else the topic of the campaign whose email triggered the rule, if any
    /// (see [`Engine::send_topic`]).
    async fn send_template(
        &self,
        s: &Subject<'_>,
        template_id: &str,
        topic_id: Option<&str>,
        by_agent: bool,
    ) -> anyhow::Result<Outcome> {
        let run = s.run;
        // The same checks and the same composition as every single email (`outbox::compose`).
        use crate::outbox::compose::{self, ComposeError};
        let domain = match compose::verified_domain(&self.store, &s.tenant).await {
            Ok(domain) => domain,
            Err(ComposeError::CustomerGone) => return Ok(Outcome::Skipped("the customer is gone".into())),
            Err(ComposeError::DomainNotRegistered | ComposeError::DomainNotVerified(_)) => {
                return Ok(Outcome::Skipped("the sending domain is not verified".into()))
            }
            Err(e) => return Err(e.into()),
        };
        let Some(template) = self.store.template(&s.tenant, template_id, None).await? else {
            return Ok(Outcome::Skipped("the template was deleted".into()));
        };
        let Some(message) = &s.message else {
            return Ok(Outcome::Skipped("the email no longer exists".into()));
        };
        if message.automation_id.is_some() {
            return Ok(Outcome::Skipped(
                "the event is about an email an automation sent: automations do not answer their own mail with more \
                 mail (no loops)"
                    .into(),
            ));
        }
        let email = normalized(&message.to_email);
        if s.contact.as_ref().is_some_and(|c| c.status != "subscribed") {
            return Ok(Outcome::Unmailable("the contact is unsubscribed; not mailed".into()));
        }
        let topic = match self.send_topic(s, topic_id).await? {
            Ok(topic) => topic,
            Err(outcome) => return Ok(outcome),
        };
        // The tenant's default sender, as for any send that names none.
        let owner = self.store.tenant(&s.tenant).await?;
        let from = crate::domain::sender::default_from(
            owner.as_ref().and_then(|t| t.from_name.as_deref()),
            owner.as_ref().and_then(|t| t.from_address.as_deref()),
            &domain.name,
        );
        let mail = compose::SingleMail {
            to_email: message.to_email.clone(),
            to_normalized: email.clone(),
            first_name: s.contact.as_ref().and_then(|c| c.first_name.clone()).or_else(|| message.first_name.clone()),
            contact_id: s.contact.as_ref().map(|c| c.id.clone()),
            from,
            content: compose::Content::template(template, "{}".into()),
            list_unsubscribe: true,
            reply_to: None,
            tags: Vec::new(),
            automation_id: Some(run.automation_id.clone()),
            topic_id: topic,
        };
        let single = match compose::compose_single(&self.store, &s.tenant, mail).await {
            Ok(single) => single,
            Err(ComposeError::Suppressed) => {
                return Ok(Outcome::Unmailable("the address is suppressed; not mailed".into()))
            }
            Err(e) => return Err(e.into()),
        };
        let day = self.store.now_ms() / crate::store::DAY_MS;
        if by_agent && !self.store.take_agent_send(&run.tenant_id, day, self.agent_daily_cap).await? {
            anyhow::bail!(GuardrailRefusal(format!(
                "the daily cap of {} agent-initiated emails is reached (MAILROOM_AGENT_DAILY_CAP)",
                self.agent_daily_cap
            )));
        }
        let contact_key = s.contact.as_ref().map_or_else(|| email.clone(), |c| c.id.clone());
        let scope = run.campaign_id.clone().unwrap_or_else(|| format!("email:{}", run.message_id));
        let queued =
            self.store.enqueue_automation_send(&s.tenant, &run.automation_id, &contact_key, &scope, &single).await?;
        if !queued {
            if by_agent {
                self.store.return_agent_send(&run.tenant_id, day).await?;
            }
            return Ok(Outcome::Skipped("this rule already mailed this contact for this campaign".into()));
        }
        self.wake.notify_waiters();
        Ok(Outcome::Done(format!("email {} queued", single.id)))
    }

    /// The topic a rule's email is about: the action's own, or else the topic
    /// of the campaign whose email triggered the rule (a follow-up to
    /// newsletter mail is newsletter mail), if that campaign targets one.
    /// The contact must be subscribed to it now, read as a campaign's
    /// audience reads it (invariant 3; the claim checks again); an outcome
    /// instead when it is not, or the topic was deleted.
    async fn send_topic(
        &self,
        s: &Subject<'_>,
        topic_id: Option<&str>,
    ) -> anyhow::Result<Result<Option<String>, Outcome>> {
        let topic = match (topic_id, &s.run.campaign_id) {
            (Some(topic), _) => Some(topic.to_owned()),
            (None, Some(campaign)) => self.store.campaign_topic(&s.tenant, campaign).await?,
            (None, None) => None,
        };
        let Some(topic) = topic else { return Ok(Ok(None)) };
        let standing = match &s.contact {
            Some(c) => self.store.topic_standing(&s.tenant, &topic, &c.id).await?,
            // Only a contact has a choice on a topic (a campaign reaches only contacts).
            None => self.store.topic(&s.tenant, &topic).await?.map(|t| (t.name, false)),
        };
        Ok(match standing {
            None => Err(Outcome::Skipped("the topic was deleted".into())),
            Some((name, false)) => {
                Err(Outcome::Unmailable(format!("the contact is not subscribed to topic “{name}”; not mailed")))
            }
            Some((_, true)) => Ok(Some(topic)),
        })
    }
}

/// One loop, finishing the runs in hand before stopping.
impl crate::workers::Worker for Engine {
    fn name(&self) -> &'static str {
        "automations"
    }

    fn step(&self) -> futures::future::BoxFuture<'_, anyhow::Result<crate::workers::Step>> {
        Box::pin(async move {
            Ok(match self.step().await? {
                0 => crate::workers::Step::Idle,
                _ => crate::workers::Step::Worked,
            })
        })
    }

    fn cadence(&self) -> crate::workers::Cadence {
        crate::workers::Cadence::Queue {
            idle: Duration::from_millis(200),
            after_error: Duration::from_secs(1),
            wake: None,
        }
    }

    fn stop(&self) -> crate::workers::Stop {
        crate::workers::Stop::Finish {
            grace: Duration::from_secs(15),
            overdue: "automation runs in flight did not finish; they are retried after their lease",
        }
    }

    fn failed(&self, error: &anyhow::Error) {
        tracing::error!(error = ?error, "automation step failed");
    }
}

/// Tells tenants' webhooks when a campaign has finished sending
/// (`campaign.sent`): looks for finished campaigns every second, a page of
/// them at a time.
pub struct FinishedCampaigns {
    store: Store,
}

impl FinishedCampaigns {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl crate::workers::Worker for FinishedCampaigns {
    fn name(&self) -> &'static str {
        "finished_campaigns"
    }

    fn step(&self) -> futures::future::BoxFuture<'_, anyhow::Result<crate::workers::Step>> {
        Box::pin(async move {
            Ok(match self.store.notify_finished_campaigns(50).await? {
                0 => crate::workers::Step::Idle,
                _ => crate::workers::Step::Worked,
            })
        })
    }

    fn cadence(&self) -> crate::workers::Cadence {
        // One page a second, as when the engine's loop did it: a backlog of
        // finished campaigns never competes with the event writer back to back.
        crate::workers::Cadence::Every { every: CAMPAIGN_SWEEP, first_now: false }
    }

    fn stop(&self) -> crate::workers::Stop {
        // Marking is guarded (`sent_notified_at IS NULL`): a pass cut short is taken up at the next start.
        crate::workers::Stop::Abandon
    }

    fn failed(&self, error: &anyhow::Error) {
        tracing::error!(error = ?error, "finished campaigns could not be announced");
    }
}

/// Whether everything a run has left to do is local writes ([`act_local`]),
/// or nothing at all (a disabled rule): such runs are done in batches.
fn only_local_left(run: &ClaimedRun) -> bool {
    if run.enabled == 0 {
        return true;
    }
    let Ok(rule) = serde_json::from_str::<Rule>(&run.definition) else { return false };
    let first = usize::try_from(run.step).unwrap_or(usize::MAX);
    run.waited == 0 && rule.actions.iter().skip(first).all(Action::is_local)
}

/// Carries out a local action ([`Action::is_local`]) inside `batch`.
async fn act_local(batch: &mut RunBatch, s: &Subject<'_>, action: &Action) -> anyhow::Result<Outcome> {
    let run = s.run;
    Ok(match action {
        Action::AddTag { tag } | Action::RemoveTag { tag } => {
            let add = matches!(action, Action::AddTag { .. });
            let Some(contact) = &s.contact else {
                return Ok(Outcome::Skipped("the recipient is not a contact".into()));
            };
            let tag = Tag::parse(tag).map_err(anyhow::Error::msg)?;
            match batch.set_contact_tag(&s.tenant, &contact.id, &tag, add).await? {
                None => Outcome::Skipped("the contact was deleted".into()),
                Some(false) if add => Outcome::Skipped(format!("the contact already has `{}`", tag.as_str())),
                Some(false) => Outcome::Skipped(format!("the contact does not have `{}`", tag.as_str())),
                Some(true) if add => Outcome::Done(format!("tagged `{}`", tag.as_str())),
                Some(true) => Outcome::Done(format!("untagged `{}`", tag.as_str())),
            }
        }
        Action::Suppress {} => {
            let Some(message) = &s.message else {
                return Ok(Outcome::Skipped("the email no longer exists".into()));
            };
            let email = normalized(&message.to_email);
            let added = batch.add_suppressions(&s.tenant, &[email], "automation", "automation").await?;
            if added == 1 {
                Outcome::Done("the address is suppressed".into())
            } else {
                Outcome::Skipped("the address was suppressed already".into())
            }
        }
        Action::Notify { message } => {
            let data = json!({
                "automation_id": run.automation_id,
                "run_id": run.id,
                "message": message,
                "event": {
                    "type": run.event_type,
                    "email_id": run.message_id,
                    "campaign_id": run.campaign_id,
                    "contact_id": run.contact_id,
                    "link": run.link,
                },
            });
            let n = batch.enqueue_tenant_events(&s.tenant, "automation.alert", &data).await?;
            Outcome::Done(format!("automation.alert queued for {n} endpoint(s)"))
        }
        Action::SendTemplate { .. } | Action::Agent { .. } => {
            Outcome::Skipped("not a local action (a bug: it should not have been batched)".into())
        }
    })
}

/// A guardrail said no to what the agent chose (the fallback runs instead).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct GuardrailRefusal(pub String);

fn contact_tags(c: &crate::store::ContactRow) -> Vec<String> {
    serde_json::from_str(&c.tags).unwrap_or_default()
}

fn entry(action: Option<&Action>, outcome: &str, detail: &str) -> Value {
    crate::domain::automation::effects::log_entry(action, outcome, detail, now_ms())
}
