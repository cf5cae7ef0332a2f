//! The sending worker. Each step claims one batch (a due retry first, else new
//! queued messages: transactional before campaign), sends it at the account's
//! rate, and records the answer. Steps are independent, so several loops — in
//! one process or many — can run side by side against one database.

mod pacer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

pub use pacer::Pacer;

use crate::domain::now_ms;
use crate::provider::{DeliveryProvider, ErrorClass, OutgoingEmail, ProviderError};
use crate::render::outgoing_email;
use crate::store::{ClaimedMessage, OutboundBatch, Store};

#[derive(Clone, Debug)]
pub struct OutboxSettings {
    /// Provider requests per second for the whole account (0: unpaced).
    pub send_rate: u32,
    /// How long a claimed batch belongs to its worker. Longer than the provider
    /// timeout, so a live worker never loses its batch; a dead worker's batch is
    /// picked up again once this runs out.
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
}

/// What one step did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A provider request was made; `sent` says whether it was accepted.
    Dispatched { messages: usize, sent: bool },
    /// Queued messages were dropped because their contact may no longer be mailed.
    Suppressed(u64),
    /// Nothing is due.
    Empty,
}

#[derive(Clone)]
pub struct Outbox {
    store: Store,
    provider: Arc<dyn DeliveryProvider>,
    pacer: Pacer,
    settings: OutboxSettings,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(store: Store, provider: Arc<dyn DeliveryProvider>, settings: OutboxSettings, wake: Arc<Notify>) -> Self {
        let pacer = Pacer::new(settings.send_rate, settings.campaign_share);
        Self { store, provider, pacer, settings, wake }
    }

    /// One unit of work: a batch whose retry (or lease) is due, else up to
    /// `claim_batches` new batches of one campaign (or one transactional email).
    pub async fn try_dispatch_once(&self) -> anyhow::Result<Step> {
        let lease = self.settings.lease_ms;
        if let Some(batch) = self.store.claim_due_batch(lease).await? {
            metrics::counter!("mailroom_batch_retries_total").increment(1);
            return self.dispatch(batch).await;
        }
        let claimed = self.store.claim_new_batch(lease, self.settings.claim_batches, render_payload).await?;
        let Some(claimed) = claimed else { return Ok(Step::Empty) };
        if claimed.suppressed > 0 {
            metrics::counter!("mailroom_messages_suppressed_at_claim_total").increment(claimed.suppressed);
        }
        if claimed.batches.is_empty() {
            return Ok(Step::Suppressed(claimed.suppressed));
        }
        self.dispatch_all(claimed.batches).await
    }

    async fn dispatch(&self, batch: OutboundBatch) -> anyhow::Result<Step> {
        self.dispatch_all(vec![batch]).await
    }

    /// Sends the batches side by side (each in its own rate slot), then records
    /// the accepted ones in one transaction and each failure on its own.
    async fn dispatch_all(&self, batches: Vec<OutboundBatch>) -> anyhow::Result<Step> {
        let results = futures::future::join_all(batches.iter().map(|b| self.send(b))).await;
        let mut accepted = Vec::new();
        let mut all_sent = true;
        for (batch, result) in batches.iter().zip(results) {
            match result? {
                Ok(ids) => {
                    if ids.len() != batch.message_ids.len() {
                        tracing::warn!(batch = %batch.id, expected = batch.message_ids.len(), got = ids.len(), "provider returned a different number of ids");
                    }
                    tracing::info!(batch = %batch.id, tenant = %batch.tenant_id, messages = batch.message_ids.len(), attempt = batch.attempts, "batch accepted");
                    accepted.push((batch, ids));
                }
                Err(e) => {
                    all_sent = false;
                    self.record_failure(batch, &e).await?;
                }
            }
        }
        let done: Vec<(&OutboundBatch, &[String])> = accepted.iter().map(|(b, ids)| (*b, ids.as_slice())).collect();
        self.store.complete_batches(&done).await?;
        let messages = batches.iter().map(|b| b.message_ids.len()).sum();
        Ok(Step::Dispatched { messages, sent: all_sent })
    }

    /// One provider request, in its rate slot. The outer error is ours (database);
    /// the inner one is the provider's answer.
    async fn send(&self, batch: &OutboundBatch) -> anyhow::Result<Result<Vec<String>, ProviderError>> {
        let waited = self.pacer.wait_turn(&self.store, batch.transactional).await?;
        metrics::histogram!("mailroom_rate_wait_seconds").record(waited.as_secs_f64());
        let started = Instant::now();
        let result = if batch.single {
            self.provider.send_email(&batch.idempotency_key, &batch.payload).await.map(|id| vec![id])
        } else {
            self.provider.send_batch(&batch.idempotency_key, &batch.payload).await
        };
        metrics::histogram!("mailroom_provider_request_seconds").record(started.elapsed().as_secs_f64());
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
                    ErrorClass::Permanent => "permanent",
                },
                e.name.clone(),
            ),
        };
        metrics::counter!("mailroom_provider_requests_total", "outcome" => outcome, "error" => error).increment(1);
        Ok(result)
    }

    async fn record_failure(&self, batch: &OutboundBatch, e: &ProviderError) -> anyhow::Result<()> {
        let reason = e.to_string();
        let attempts_left = batch.attempts < i64::from(self.settings.max_attempts);
        match e.class {
            ErrorClass::RateLimited { retry_after_ms } => {
                tracing::info!(batch = %batch.id, retry_after_ms, "provider rate limit; waiting");
                metrics::counter!("mailroom_rate_limit_waits_total").increment(1);
                self.pacer.hold_off(&self.store, retry_after_ms).await?;
                let retry = i64::try_from(retry_after_ms).unwrap_or(i64::MAX / 2);
                self.store.reschedule_batch(batch, now_ms() + retry, &reason, false).await?;
            }
            ErrorClass::Retryable if attempts_left => {
                let delay = backoff_ms(self.settings.retry_base_ms, batch.attempts);
                tracing::warn!(batch = %batch.id, attempt = batch.attempts, delay_ms = delay, error = %reason, "batch failed; will retry");
                self.store.reschedule_batch(batch, now_ms() + delay, &reason, true).await?;
            }
            ErrorClass::Permanent if !batch.single && e.status == Some(422) => {
                // Resend validates a batch as a whole: find the invalid emails by sending each alone.
                tracing::warn!(batch = %batch.id, error = %reason, "batch rejected as invalid; retrying its emails one by one");
                self.store.split_batch(batch, &reason).await?;
            }
            _ => {
                tracing::warn!(batch = %batch.id, attempt = batch.attempts, error = %reason, "batch dead-lettered");
                metrics::counter!("mailroom_dead_letters_total").increment(batch.message_ids.len() as u64);
                self.store.fail_batch(batch, &reason).await?;
            }
        }
        Ok(())
    }

    /// Runs `concurrency` dispatch loops until `shutdown` turns true. Each loop
    /// finishes the batch in hand before stopping, so nothing is left half-recorded.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let loops: Vec<_> = (0..self.settings.concurrency.max(1))
            .map(|_| {
                let me = self.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move { me.run_loop(shutdown).await })
            })
            .collect();
        for l in loops {
            let _ = l.await;
        }
    }

    async fn run_loop(&self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let idle = match self.try_dispatch_once().await {
                Ok(Step::Empty) => Duration::from_millis(250),
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!(error = ?e, "outbox step failed");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// Serialises the claimed messages once; these exact bytes go out on every attempt.
pub fn render_payload(messages: &[ClaimedMessage], single: bool) -> String {
    let emails: Vec<OutgoingEmail> = messages.iter().map(outgoing_email).collect();
    let json = match emails.first() {
        Some(one) if single => serde_json::to_string(one),
        _ => serde_json::to_string(&emails),
    };
    json.unwrap_or_default()
}

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
