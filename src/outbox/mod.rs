//! The sending worker. Each step claims one batch (a due retry first, else new
//! queued messages: transactional before campaign, of the tenant whose turn it
//! is — see [`crate::domain::fair_share`]), sends it at the account's rate, and
//! records the answer. Steps are independent, so several loops — in one
//! process or many — can run side by side against one database; in one
//! process, loops claim for different tenants at once.

pub mod compose;
mod paced_provider;
mod pacer;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

pub use paced_provider::PacedProvider;
pub use pacer::Pacer;

use crate::domain::{now_ms, RenderClaimed};
use crate::provider::{BatchAnswer, DeliveryProvider, ErrorClass, ProviderError};
use crate::render::Renderer;
use crate::store::{DueBatch, OutboundBatch, Settlement, Store, IDEMPOTENCY_WINDOW_MS};

#[derive(Clone, Debug)]
pub struct OutboxSettings {
    /// Provider requests per second for the whole account (0: unpaced).
    pub send_rate: u32,
    /// How long a claimed batch belongs to its worker without being renewed.
    /// The worker renews it while it waits for a slot or for the provider, so
    /// only a dead (or stalled) worker's batch is ever picked up again.
    pub lease_ms: i64,
    /// Attempts per batch before its messages fail.
    pub max_attempts: u32,
    /// First retry delay; each further retry waits four times longer, with jitter.
    pub retry_base_ms: u64,
    /// Concurrent dispatch loops in this process.
    pub concurrency: usize,
    /// Batches one claim may take at once (fewer, larger transactions).
    pub claim_batches: usize,
    /// Most of the send rate campaign mail may use while transactional mail waits.
    pub campaign_share: f64,
    /// Largest request body sent to the provider; a batch is cut to fit.
    pub max_batch_bytes: usize,
}

/// What one step did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A provider request was made; `sent` says whether it was accepted.
    Dispatched { messages: usize, sent: bool },
    /// Queued messages were dropped because their contact may no longer be mailed.
    Suppressed(u64),
    /// A batch due again was settled without sending (its campaign was
    /// cancelled, or resending could duplicate): `status` of its messages now.
    Settled { status: &'static str, messages: u64 },
    /// Nothing is due.
    Empty,
}

/// How a provider call ended, as the outbox records it.
enum Sent {
    /// Every email accepted; ids in request order.
    All(Vec<String>),
    /// Some emails refused on their own (permissive validation).
    Partly(BatchAnswer),
    /// The provider refused the request.
    Failed(ProviderError),
    /// The claim was lost while waiting (another worker holds the batch now).
    ClaimLost,
}

#[derive(Clone)]
pub struct Outbox {
    store: Store,
    provider: Arc<dyn DeliveryProvider>,
    pacer: Pacer,
    settings: OutboxSettings,
    wake: Arc<Notify>,
    renderer: Arc<Renderer>,
    /// The (tenant, lane) pairs this process is claiming for: a claim renders
    /// what it would take before its transaction, so two claims of one
    /// tenant's lane at once would render the same messages (of which only one
    /// could claim them), and a tenant whose template is slow would hold more
    /// than one render worker. Claims of other tenants go side by side.
    claiming: Arc<Claims>,
    /// Choosing a turn and marking it in `claiming`, one at a time.
    choosing: Arc<tokio::sync::Mutex<()>>,
    /// Claims of batches due again, one at a time.
    retrying: Arc<tokio::sync::Mutex<()>>,
}

impl Outbox {
    pub fn new(
        store: Store,
        provider: Arc<dyn DeliveryProvider>,
        settings: OutboxSettings,
        wake: Arc<Notify>,
        renderer: Arc<Renderer>,
    ) -> Self {
        let pacer = Pacer::new(settings.send_rate, settings.campaign_share);
        Self {
            store,
            provider,
            pacer,
            settings,
            wake,
            renderer,
            claiming: Arc::default(),
            choosing: Arc::default(),
            retrying: Arc::default(),
        }
    }

    /// Turns claimed messages into the provider's JSON.
    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    /// The pacer every provider request of this process goes through.
    pub fn pacer(&self) -> Pacer {
        self.pacer.clone()
    }

    /// One unit of work: a batch whose retry (or lease) is due, else up to
    /// `claim_batches` new batches of one campaign (or one transactional
    /// email), of the tenant whose turn it is among those this process is not
    /// already claiming for.
    pub async fn try_dispatch_once(&self) -> anyhow::Result<Step> {
        let lease = self.settings.lease_ms;
        if let Ok(retrying) = self.retrying.try_lock() {
            let due = self.store.claim_due_batch(lease, self.renderer.as_ref()).await?;
            drop(retrying);
            match due {
                DueBatch::Claimed(batch) => {
                    metrics::counter!("mailroom_batch_retries_total").increment(1);
                    return self.dispatch_all(vec![batch], None).await;
                }
                DueBatch::Settled { status, messages } => {
                    tracing::info!(status, messages, "a batch due again was settled without sending");
                    if status == "dead" {
                        metrics::counter!("mailroom_dead_letters_total").increment(messages);
                    }
                    return Ok(Step::Settled { status, messages });
                }
                DueBatch::None => {}
            }
        }
        let Some(claiming) = self.take_turn().await? else { return Ok(Step::Empty) };
        let turn = claiming.turn.clone();
        let (batches, bytes) = (self.settings.claim_batches, self.settings.max_batch_bytes);
        let ahead = self.store.read_claim(&turn, batches, bytes, claiming.after.as_deref()).await?;
        if claiming.after.is_some() && ahead.messages().is_empty() {
            // Following a claim of the campaign, and nothing after it: leave the rest to that claim.
            self.claiming.dry(claiming.follows);
            return Ok(Step::Suppressed(0));
        }
        self.claiming.read(claiming.id, &ahead);
        let started = Instant::now();
        let answers = self.renderer.render_claimed(ahead.messages()).await?;
        self.claiming.rendered(&turn, ahead.templated(), started.elapsed());
        let claimed = self.store.commit_claim(&turn, lease, bytes, ahead, answers).await?;
        if claimed.suppressed > 0 {
            metrics::counter!("mailroom_messages_suppressed_at_claim_total").increment(claimed.suppressed);
        }
        if claimed.batches.is_empty() {
            return Ok(Step::Suppressed(claimed.suppressed));
        }
        // The tenant's turn is held until its requests have their rate slots:
        // a tenant has at most one claim waiting for slots in this process,
        // so others' mail claimed meanwhile is not queued behind a row of its.
        self.dispatch_all(claimed.batches, Some(claiming)).await
    }

    /// The next turn of a tenant this process is not claiming for, marked as
    /// claimed until the returned guard is dropped. When only tenants being
    /// claimed for have mail due, and nothing waits for rate slots, a claim
    /// may follow one of theirs under way (see [`Claims::follow`]).
    async fn take_turn(&self) -> anyhow::Result<Option<Claiming>> {
        // Everything due may belong to tenants this process is claiming for
        // already: then wait for one of those claims to let go, or to have
        // read what it takes (rather than idle), for as long as one is under
        // way, up to a bound.
        let until = tokio::time::Instant::now() + TURN_WAIT;
        loop {
            let changed = self.claiming.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let _choosing = self.choosing.lock().await;
                let busy = self.claiming.busy();
                if let Some(turn) = self.store.next_turn(false, &busy).await? {
                    return Ok(Some(self.claiming.take(turn, None)));
                }
                if busy.is_empty() {
                    return Ok(None);
                }
                if self.pacer.is_unlimited() {
                    if let Some(follow) = self.claiming.follow() {
                        return Ok(Some(follow));
                    }
                }
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                return Ok(None);
            }
        }
    }

    /// Sends the batches side by side (each in its own rate slot), then records
    /// the accepted ones together and each failure on its own. A failure to
    /// record one outcome does not stop the others being recorded; the batch
    /// whose outcome was not recorded is sent again, under the same key, after
    /// its lease. `turn`, when given, is let go once every batch has its rate
    /// slot (or has ended).
    async fn dispatch_all(&self, batches: Vec<OutboundBatch>, turn: Option<Claiming>) -> anyhow::Result<Step> {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        let turn = std::sync::Mutex::new(turn);
        let waiting = AtomicUsize::new(batches.len());
        let results = futures::future::join_all(batches.iter().map(|b| async {
            let once = AtomicBool::new(false);
            let slotted = || {
                if !once.swap(true, Ordering::AcqRel) && waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
                    drop(turn.lock().ok().and_then(|mut t| t.take()));
                }
            };
            let sent = self.send_holding(b, &slotted).await;
            slotted();
            sent
        }))
        .await;
        let mut accepted = Vec::new();
        let mut all_sent = true;
        let mut first_error: Option<anyhow::Error> = None;
        for (batch, result) in batches.iter().zip(results) {
            let recorded = match result {
                Err(e) => Err(e),
                Ok(Sent::ClaimLost) => Ok(()),
                Ok(Sent::All(ids)) if ids.len() == batch.message_ids.len() => {
                    tracing::info!(batch = %batch.id, tenant = %batch.tenant_id, messages = ids.len(), attempt = batch.attempt, "batch accepted");
                    accepted.push((batch, ids));
                    Ok(())
                }
                Ok(Sent::All(ids)) => {
                    // Accepted, but the answer cannot be matched to the emails: record
                    // it as an error on this batch for review, never a resend loop.
                    all_sent = false;
                    let e = ProviderError::permanent(
                        "invalid_response",
                        format!(
                            "the provider accepted the request but answered {} ids for {} emails; check its logs before retrying",
                            ids.len(),
                            batch.message_ids.len()
                        ),
                    );
                    self.record_failure(batch, &e).await
                }
                Ok(Sent::Partly(answer)) => {
                    all_sent = false;
                    self.record_partial(batch, answer).await
                }
                Ok(Sent::Failed(e)) => {
                    all_sent = false;
                    self.record_failure(batch, &e).await
                }
            };
            if let Err(e) = recorded {
                tracing::error!(batch = %batch.id, error = ?e, "could not record a batch's outcome; it is retried after its lease");
                first_error.get_or_insert(e);
            }
        }
        let done: Vec<(&OutboundBatch, &[String])> = accepted.iter().map(|(b, ids)| (*b, ids.as_slice())).collect();
        if let Err(e) = self.store.complete_batches(&done).await {
            first_error.get_or_insert(e.into());
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let messages = batches.iter().map(|b| b.message_ids.len()).sum();
        Ok(Step::Dispatched { messages, sent: all_sent })
    }

    /// Sends one batch while keeping its claim alive: the lease is renewed every
    /// third of its length for as long as the batch waits for a slot or for the
    /// provider. Should the claim be lost meanwhile, the send is abandoned (the
    /// new holder sends it, under the same key).
    async fn send_holding(&self, batch: &OutboundBatch, slotted: &(dyn Fn() + Sync)) -> anyhow::Result<Sent> {
        let lease = self.settings.lease_ms;
        let renew = async {
            let period = Duration::from_millis(u64::try_from(lease / 3).unwrap_or(1000).max(50));
            loop {
                tokio::time::sleep(period).await;
                match self.store.renew_claim(batch, lease).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(batch = %batch.id, error = %e, "could not renew a claim"),
                }
            }
        };
        tokio::select! {
            sent = self.send(batch, slotted) => sent,
            () = renew => {
                tracing::warn!(batch = %batch.id, "claim lost while sending; leaving the batch to its new holder");
                Ok(Sent::ClaimLost)
            }
        }
    }

    /// One provider request, in its rate slot. The outer error is ours (database).
    async fn send(&self, batch: &OutboundBatch, slotted: &(dyn Fn() + Sync)) -> anyhow::Result<Sent> {
        let waited = self.pacer.wait_turn(&self.store, batch.shape.transactional()).await?;
        slotted();
        metrics::histogram!("mailroom_rate_wait_seconds").record(waited.as_secs_f64());
        let started = Instant::now();
        let result = if batch.shape.single() {
            self.provider.send_email(&batch.idempotency_key, &batch.payload).await.map(|id| Sent::All(vec![id]))
        } else {
            self.provider.send_batch(&batch.idempotency_key, &batch.payload).await.map(|answer| {
                if answer.rejected.is_empty() {
                    Sent::All(answer.ids)
                } else {
                    Sent::Partly(answer)
                }
            })
        };
        metrics::histogram!("mailroom_provider_request_seconds").record(started.elapsed().as_secs_f64());
        if let Some(limit) = self.provider.account_rate_limit() {
            self.pacer.learn_limit(limit);
        }
        // `ratelimit-remaining: 0` (another key on the account may be sending):
        // no process books a slot before the window resets.
        if let Some(until) = self.provider.exhausted_until_ms() {
            metrics::counter!("mailroom_rate_limit_waits_total").increment(1);
            self.pacer.hold_off(&self.store, u64::try_from(until - now_ms()).unwrap_or(0)).await?;
        }
        let (outcome, error) = match &result {
            Ok(_) => ("accepted", String::new()),
            Err(e) => (
                match e.class {
                    ErrorClass::Retryable => "retryable",
                    ErrorClass::RateLimited { .. } => "rate_limited",
                    ErrorClass::QuotaExceeded { .. } => "quota_exceeded",
                    ErrorClass::KeyRejected => "key_rejected",
                    ErrorClass::TooLarge => "too_large",
                    ErrorClass::Permanent => "permanent",
                },
                e.name.clone(),
            ),
        };
        metrics::counter!("mailroom_provider_requests_total", "outcome" => outcome, "error" => error).increment(1);
        Ok(result.unwrap_or_else(Sent::Failed))
    }

    /// Some emails accepted, others refused: the refused ones become dead letters.
    async fn record_partial(&self, batch: &OutboundBatch, answer: BatchAnswer) -> anyhow::Result<()> {
        let reasons: std::collections::BTreeMap<usize, String> = answer.rejected.into_iter().collect();
        let mut ids = answer.ids.into_iter();
        let (mut accepted, mut refused) = (Vec::new(), Vec::new());
        for (index, message_id) in batch.message_ids.iter().enumerate() {
            match reasons.get(&index) {
                Some(reason) => refused.push((message_id.clone(), format!("validation_error: {reason}"))),
                None => {
                    if let Some(id) = ids.next() {
                        accepted.push((message_id.clone(), id));
                    }
                }
            }
        }
        tracing::warn!(batch = %batch.id, refused = refused.len(), accepted = accepted.len(), "provider refused some emails of a batch");
        metrics::counter!("mailroom_dead_letters_total").increment(refused.len() as u64);
        self.store.complete_partially(batch, &accepted, &refused).await?;
        Ok(())
    }

    async fn record_failure(&self, batch: &OutboundBatch, e: &ProviderError) -> anyhow::Result<()> {
        let reason = e.to_string();
        // What the logs say: the provider's message may name a recipient.
        let logged = crate::domain::redact_addresses(&reason);
        let settle = Settlement { batch, error: &reason };
        let attempts_left = batch.attempt < i64::from(self.settings.max_attempts);
        // Due times are on the store's clock (a test moves it ahead); only the pacer keeps the system's.
        let now = self.store.now_ms();
        match e.class {
            ErrorClass::RateLimited { retry_after_ms } | ErrorClass::QuotaExceeded { retry_after_ms } => {
                if matches!(e.class, ErrorClass::QuotaExceeded { .. }) {
                    tracing::error!(retry_after_ms, error = %logged, "provider quota spent; sending paused until it resets");
                    metrics::counter!("mailroom_provider_paused_total", "reason" => "quota").increment(1);
                } else {
                    tracing::info!(batch = %batch.id, retry_after_ms, "provider rate limit; waiting");
                }
                metrics::counter!("mailroom_rate_limit_waits_total").increment(1);
                self.pacer.hold_off(&self.store, retry_after_ms).await?;
                let retry = i64::try_from(retry_after_ms).unwrap_or(i64::MAX / 2);
                // Refused outright: not an attempt, and nothing can have been sent.
                self.store.reschedule_batch(settle, now + retry, false, false).await?;
            }
            ErrorClass::KeyRejected => {
                // Every request would fail alike: hold all sending, alert, keep the mail.
                tracing::error!(error = %logged, "the provider refused the API key; sending paused, check RESEND_API_KEY");
                metrics::counter!("mailroom_provider_paused_total", "reason" => "key_rejected").increment(1);
                self.pacer.hold_off(&self.store, KEY_REJECTED_PAUSE_MS).await?;
                let pause = i64::try_from(KEY_REJECTED_PAUSE_MS).unwrap_or(60_000);
                self.store.reschedule_batch(settle, now + pause, false, false).await?;
            }
            ErrorClass::TooLarge if batch.message_ids.len() > 1 => {
                tracing::warn!(batch = %batch.id, error = %logged, "batch too large for the provider; retrying its emails one by one");
                self.store.split_batch(settle).await?;
            }
            ErrorClass::Retryable if attempts_left => {
                let due = now + backoff_ms(self.settings.retry_base_ms, batch.attempt);
                // The provider may have taken this attempt. Past its 24 h key
                // window a resend could deliver twice: dead-letter it for review.
                let since = batch.uncertain_since.unwrap_or(now);
                if due - since > IDEMPOTENCY_WINDOW_MS {
                    let reason = format!(
                        "{reason}; not retried: the next attempt would fall outside Resend's 24 h idempotency window \
                         and an earlier attempt may have been delivered; check the provider before retrying"
                    );
                    metrics::counter!("mailroom_dead_letters_total").increment(batch.message_ids.len() as u64);
                    self.store.fail_batch(Settlement { batch, error: &reason }).await?;
                } else {
                    tracing::warn!(batch = %batch.id, attempt = batch.attempt, delay_ms = due - now, error = %logged, "batch failed; will retry");
                    self.store.reschedule_batch(settle, due, true, true).await?;
                }
            }
            ErrorClass::Permanent if !batch.shape.single() && e.status == Some(422) => {
                // A strict validation of the batch as a whole: find the invalid emails by sending each alone.
                tracing::warn!(batch = %batch.id, error = %logged, "batch rejected as invalid; retrying its emails one by one");
                self.store.split_batch(settle).await?;
            }
            _ => {
                tracing::warn!(batch = %batch.id, attempt = batch.attempt, error = %logged, "batch dead-lettered");
                metrics::counter!("mailroom_dead_letters_total").increment(batch.message_ids.len() as u64);
                self.store.fail_batch(settle).await?;
            }
        }
        Ok(())
    }
}

/// The turns this process is claiming for, and a signal when one ends or has
/// read what it takes.
#[derive(Default)]
struct Claims {
    taken: std::sync::Mutex<Vec<Taken>>,
    /// The (tenant, lane) pairs whose last claim in this process rendered a
    /// template quickly: claims of theirs may follow one another.
    quick: std::sync::Mutex<HashSet<(String, i64)>>,
    changed: Notify,
    next_id: AtomicU64,
}

/// A claim under way in this process.
struct Taken {
    id: u64,
    turn: crate::store::Turn,
    /// For a campaign's claim that has read what it takes: the last message read.
    last_read: Option<String>,
    /// Whether that is a template's to render.
    templated: bool,
    /// A claim following this one found nothing after it.
    dry: bool,
}

impl Claims {
    /// The (tenant, lane) pairs being claimed for.
    fn busy(&self) -> Vec<(String, i64)> {
        let taken = self.taken.lock().map(|t| t.iter().map(|t| (t.turn.tenant_id.clone(), t.turn.lane)).collect());
        taken.unwrap_or_default()
    }

    /// Marks `turn` as being claimed (after message `follows`, when following a claim).
    fn take(self: &Arc<Self>, turn: crate::store::Turn, follows: Option<(u64, String)>) -> Claiming {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut taken) = self.taken.lock() {
            taken.push(Taken { id, turn: turn.clone(), last_read: None, templated: false, dry: false });
        }
        let (follows, after) = follows.unzip();
        Claiming { id, turn, follows, after, claims: self.clone() }
    }

    /// A claim to follow one under way that has read what it takes: of the
    /// same campaign, reading after the last message that one read, so the
    /// two take different messages. A tenant has at most two claims in a
    /// lane at once, and the second only while no other tenant has mail due
    /// (the caller asks first); one whose template rendered slowly, or not
    /// yet, has one, so that it never holds two render workers.
    fn follow(self: &Arc<Self>) -> Option<Claiming> {
        let leader = {
            let taken = self.taken.lock().ok()?;
            let quick = self.quick.lock().ok()?;
            let alone = |t: &Taken| {
                taken.iter().filter(|o| o.turn.tenant_id == t.turn.tenant_id && o.turn.lane == t.turn.lane).count() == 1
            };
            let leader = taken.iter().find(|t| {
                t.last_read.is_some()
                    && !t.dry
                    && alone(t)
                    && (!t.templated || quick.contains(&(t.turn.tenant_id.clone(), t.turn.lane)))
            })?;
            (leader.id, leader.last_read.clone()?, leader.turn.clone())
        };
        let (id, after, turn) = leader;
        Some(self.take(turn, Some((id, after))))
    }

    /// Claim `id` has read `ahead`: claims may follow it.
    fn read(&self, id: u64, ahead: &crate::store::ClaimAhead) {
        let Some(last) = ahead.last_read() else { return };
        if let Ok(mut taken) = self.taken.lock() {
            if let Some(t) = taken.iter_mut().find(|t| t.id == id) {
                t.last_read = Some(last.to_owned());
                t.templated = ahead.templated();
            }
        }
        // One claimer may follow it: wake one.
        self.changed.notify_one();
    }

    /// A claim following claim `leader` found nothing after it: none follows it again.
    fn dry(&self, leader: Option<u64>) {
        if let Ok(mut taken) = self.taken.lock() {
            if let Some(t) = taken.iter_mut().find(|t| Some(t.id) == leader) {
                t.dry = true;
            }
        }
    }

    /// How long a claim of `turn` took to render.
    fn rendered(&self, turn: &crate::store::Turn, templated: bool, took: Duration) {
        if !templated {
            return;
        }
        if let Ok(mut quick) = self.quick.lock() {
            let key = (turn.tenant_id.clone(), turn.lane);
            if took < QUICK_RENDER {
                quick.insert(key);
            } else {
                quick.remove(&key);
            }
        }
    }
}

/// How long a claim may take to render its template and still be followed by
/// another claim of its tenant: a fraction of the render deadline.
const QUICK_RENDER: Duration = Duration::from_millis(100);

/// How long a claimer waits for another's turn to end when only tenants being
/// claimed for have mail due, before it idles.
const TURN_WAIT: Duration = Duration::from_secs(2);

/// A turn being claimed: while it lives, this process claims nothing else for
/// its tenant in its lane, but for a claim following it.
struct Claiming {
    id: u64,
    turn: crate::store::Turn,
    /// The claim this one follows, if any, and the last message that one read.
    follows: Option<u64>,
    after: Option<String>,
    claims: Arc<Claims>,
}

impl Drop for Claiming {
    fn drop(&mut self) {
        if let Ok(mut taken) = self.claims.taken.lock() {
            if let Some(i) = taken.iter().position(|t| t.id == self.id) {
                taken.swap_remove(i);
            }
        }
        self.claims.changed.notify_waiters();
    }
}

/// The runner loops `concurrency` claimers side by side, each claiming for a
/// different tenant (transactional mail first); each finishes the batch in
/// hand before stopping, so nothing is left half-recorded.
impl crate::workers::Worker for Outbox {
    fn name(&self) -> &'static str {
        "outbox"
    }

    fn step(&self) -> futures::future::BoxFuture<'_, anyhow::Result<crate::workers::Step>> {
        Box::pin(async move {
            Ok(match self.try_dispatch_once().await? {
                Step::Empty => crate::workers::Step::Idle,
                _ => crate::workers::Step::Worked,
            })
        })
    }

    fn cadence(&self) -> crate::workers::Cadence {
        crate::workers::Cadence::Queue {
            idle: Duration::from_millis(250),
            after_error: Duration::from_secs(1),
            wake: Some(self.wake.clone()),
        }
    }

    fn lanes(&self) -> usize {
        self.settings.concurrency.max(1)
    }

    fn stop(&self) -> crate::workers::Stop {
        crate::workers::Stop::Finish {
            grace: Duration::from_secs(30),
            overdue: "worker did not stop within 30 s; leased batches will be retried after their lease",
        }
    }

    fn failed(&self, error: &anyhow::Error) {
        tracing::error!(error = ?error, "outbox step failed");
    }
}

/// How long sending pauses after the provider refused the API key, before trying again.
const KEY_REJECTED_PAUSE_MS: u64 = 60_000;

/// Exponential backoff with jitter: base, 4x base, 16x base, ... capped at an hour,
/// each scaled by a random factor in [0.5, 1.0] so retries do not arrive in lockstep.
pub fn backoff_ms(base_ms: u64, attempt: i64) -> i64 {
    let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 10)).unwrap_or(10);
    let delay = base_ms.saturating_mul(4u64.saturating_pow(exp)).min(3_600_000);
    let jitter = 0.5 + rand::random::<f64>() * 0.5;
    (delay as f64 * jitter) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ClaimAhead, ClaimedMessage, Turn};

    fn read(ids: &[&str], templated: bool) -> ClaimAhead {
        let m = |id: &&str| ClaimedMessage { id: (*id).into(), templated: i64::from(templated), ..Default::default() };
        ClaimAhead::of_campaign(ids.iter().map(m).collect())
    }

    #[test]
    fn a_claim_follows_another_of_its_campaign_only_once_that_one_has_read_and_reads_after_it() {
        let claims = Arc::new(Claims::default());
        let leader = claims.take(Turn::of_campaign("t1", "c1", "m1"), None);
        assert!(claims.follow().is_none(), "the leader has not read what it takes yet");
        claims.read(leader.id, &read(&["m1", "m2", "m3"], false));
        let follower = claims.follow().expect("an inline campaign's claim may be followed");
        assert_eq!(follower.after.as_deref(), Some("m3"));
        assert_eq!(follower.follows, Some(leader.id));
        assert!(claims.follow().is_none(), "a tenant has at most two claims in a lane at once");
        claims.read(follower.id, &read(&["m4", "m5"], false));
        assert!(claims.follow().is_none(), "still two under way");
        drop(leader);
        let third = claims.follow().expect("the follower, alone now, may be followed");
        assert_eq!(third.after.as_deref(), Some("m5"));
        assert_eq!(claims.busy().len(), 2);
    }

    #[test]
    fn a_claim_whose_followers_found_nothing_is_not_followed_again() {
        let claims = Arc::new(Claims::default());
        let leader = claims.take(Turn::of_campaign("t1", "c1", "m1"), None);
        claims.read(leader.id, &read(&["m1"], false));
        let follower = claims.follow().expect("followed");
        claims.dry(follower.follows);
        drop(follower);
        assert!(claims.follow().is_none());
    }

    #[test]
    fn a_templated_claim_is_followed_only_when_its_tenants_last_template_rendered_quickly() {
        let claims = Arc::new(Claims::default());
        let turn = Turn::of_campaign("t1", "c1", "m1");
        let leader = claims.take(turn.clone(), None);
        claims.read(leader.id, &read(&["m1", "m2"], true));
        assert!(claims.follow().is_none(), "no render measured yet: one render worker at most");
        claims.rendered(&turn, true, Duration::from_millis(5));
        assert!(claims.follow().is_some());
        drop(leader);
        let leader = claims.take(Turn::of_campaign("t2", "c2", "n1"), None);
        claims.read(leader.id, &read(&["n1"], true));
        claims.rendered(&Turn::of_campaign("t2", "c2", "n1"), true, QUICK_RENDER * 10);
        assert!(claims.follow().is_none(), "a slow template never holds two render workers");
    }

    #[test]
    fn backoff_grows_fourfold_with_jitter_and_is_capped() {
        for attempt in 1..=4 {
            let d = backoff_ms(1000, attempt);
            let full = 1000 * 4i64.pow(attempt as u32 - 1);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d}");
        }
        assert!(backoff_ms(1000, 40) <= 3_600_000);
    }
}
