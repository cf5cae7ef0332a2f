//! Webhooks to tenants, signed per the Standard Webhooks specification
//! (<https://www.standardwebhooks.com/>): `webhook-id` (the delivery's id, the
//! same on every retry), `webhook-timestamp` and `webhook-signature` (computed
//! at each attempt). Deliveries come from a durable queue in the database
//! (`webhook_deliveries`), claimed under a lease and a token like the outbox's
//! batches, so several workers can run side by side and a dead worker's
//! deliveries are retried after their lease. At least once: a receiver
//! deduplicates on `webhook-id`.
//!
//! Fair shares (issue 20): no delivery waits for another. A step claims what
//! may go now and spawns each attempt on its own, then returns; the next step
//! claims again while slow attempts are still running. A claim takes
//! endpoints in turn and counts the deliveries in flight in the database (the
//! leases), so the caps — `MAILROOM_WEBHOOK_ENDPOINT_CONCURRENCY` per endpoint,
//! `MAILROOM_WEBHOOK_TENANT_CONCURRENCY` per tenant — hold across every worker
//! process, not per process: a slow endpoint holds at most its own share, and
//! another endpoint's first attempt starts at the next step.

pub mod guard;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use standardwebhooks::Webhook;
use tokio::sync::Notify;

use crate::domain::now_ms;
pub use crate::domain::webhook_shares::InFlightCaps;
use crate::store::{AttemptOutcome, ClaimedDelivery, DisablePolicy, Store};

/// Delays before each retry after a failure (the same schedule as Resend's and
/// Svix's): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; then the delivery fails.
pub const RETRY_SCHEDULE_SECS: [u64; 7] = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];
/// An endpoint failing this long without a success is disabled.
pub const DISABLE_AFTER_MS: i64 = 5 * 24 * 3_600_000;
/// A receiver that has not answered in this long has failed the attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery stays its worker's: well past the attempt's timeout.
const LEASE_MS: i64 = 60_000;
/// Deliveries one step claims at most (each then goes on its own).
const CLAIM: usize = 32;
/// Attempts in flight in one process at most, whatever the tenants: a bound
/// on its open connections (the caps per endpoint and tenant come first).
const MAX_IN_FLIGHT: usize = 256;
/// How long the old secret keeps signing after a rotation.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3_600_000;

#[derive(Clone, Debug)]
pub struct NotifierSettings {
    /// Multiplies [`RETRY_SCHEDULE_SECS`] (tests make it tiny).
    pub retry_scale: f64,
    /// Consecutive failures that disable an endpoint.
    pub disable_after: u32,
    /// Let endpoints be private addresses (development and tests only).
    pub allow_private: bool,
    /// The operator's alert webhook: deliveries without an endpoint go here.
    pub alert: Option<OperatorAlert>,
    /// Deliveries in flight at once, per endpoint and per tenant, across processes.
    pub caps: InFlightCaps,
}

/// `MAILROOM_ALERT_WEBHOOK_URL` and its `whsec_` secret. The operator chose
/// this address, so the SSRF guard for tenants' URLs does not apply to it.
#[derive(Clone, Debug)]
pub struct OperatorAlert {
    pub url: String,
    pub secret: String,
}

impl NotifierSettings {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            retry_scale: config.webhook_retry_scale,
            disable_after: config.webhook_disable_after,
            allow_private: config.allow_private_webhooks,
            alert: match (&config.alert_webhook_url, &config.alert_webhook_secret) {
                (Some(url), Some(secret)) => Some(OperatorAlert { url: url.clone(), secret: secret.clone() }),
                _ => None,
            },
            caps: InFlightCaps {
                per_endpoint: usize::try_from(config.webhook_endpoint_concurrency).unwrap_or(2).max(1),
                per_tenant: usize::try_from(config.webhook_tenant_concurrency).unwrap_or(8).max(1),
            },
        }
    }
}

/// What one step did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing was due.
    Empty,
    /// This many attempts were started (each records its outcome when it ends).
    Started(usize),
}

#[derive(Clone)]
pub struct Notifier {
    store: Store,
    http: reqwest::Client,
    /// For the operator's own alert URL: no SSRF guard (it may well be internal).
    operator_http: reqwest::Client,
    settings: NotifierSettings,
    /// Attempts started and not yet recorded, in this process.
    in_flight: Arc<AtomicUsize>,
    /// Told when an attempt ends, so that the next claim need not wait for the idle pause.
    finished: Arc<Notify>,
}

/// An attempt in flight, counted until it ends (also when its task is cut short).
struct InFlightAttempt {
    count: Arc<AtomicUsize>,
    finished: Arc<Notify>,
}

impl InFlightAttempt {
    fn start(count: &Arc<AtomicUsize>, finished: &Arc<Notify>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self { count: count.clone(), finished: finished.clone() }
    }
}

impl Drop for InFlightAttempt {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
        self.finished.notify_one();
    }
}

/// A fresh endpoint secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The `webhook-signature` header: `v1,<sig>` with the current secret, and a
/// second, space-separated, with the previous one while a rotation overlaps.
pub fn signature_header(d: &ClaimedDelivery, timestamp: i64, now: i64) -> Result<String, String> {
    let sign = |secret: &str| {
        Webhook::new(secret)
            .and_then(|w| w.sign(&d.id, timestamp, d.payload.as_bytes()))
            .map_err(|e| format!("could not sign: {e}"))
    };
    let current = sign(&d.secret)?;
    match (&d.previous_secret, d.previous_secret_expires_at) {
        (Some(previous), Some(until)) if until > now => Ok(format!("{current} {}", sign(previous)?)),
        _ => Ok(current),
    }
}

impl Notifier {
    pub fn new(store: Store, settings: NotifierSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect to addresses the guard never saw.
            .no_proxy()
            .dns_resolver(Arc::new(guard::GuardedResolver { allow_private: settings.allow_private }))
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(ATTEMPT_TIMEOUT)
            .user_agent(concat!("mailroom-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("Failed to build the webhook client: {e}"))?;
        let operator_http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(ATTEMPT_TIMEOUT)
            .user_agent(concat!("mailroom-alerts/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("Failed to build the alert webhook client: {e}"))?;
        Ok(Self { store, http, operator_http, settings, in_flight: Arc::default(), finished: Arc::new(Notify::new()) })
    }

    /// Claims what may go now (endpoints in turn, within the caps) and starts
    /// each attempt on its own task, without waiting for any: each records its
    /// outcome when it ends.
    pub async fn try_deliver_once(&self) -> anyhow::Result<Step> {
        let room = MAX_IN_FLIGHT.saturating_sub(self.in_flight.load(Ordering::SeqCst)).min(CLAIM);
        let claimed = self.store.claim_deliveries(LEASE_MS, room, self.settings.caps).await?;
        if claimed.is_empty() {
            return Ok(Step::Empty);
        }
        let started = claimed.len();
        for d in claimed {
            let attempt = InFlightAttempt::start(&self.in_flight, &self.finished);
            let notifier = self.clone();
            tokio::spawn(async move {
                let _attempt = attempt;
                if let Err(e) = notifier.attempt(&d).await {
                    tracing::error!(error = ?e, delivery = %d.id, "a webhook attempt could not be recorded; retried after its lease");
                }
            });
        }
        Ok(Step::Started(started))
    }

    /// Attempts started and not yet recorded, in this process.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// One attempt of one delivery, recorded under its claim.
    async fn attempt(&self, d: &ClaimedDelivery) -> anyhow::Result<()> {
        let started = Instant::now();
        let result = self.send(d).await;
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (delivered, status_code, error) = match &result {
            Ok(status) if (200..300).contains(status) => (true, Some(i64::from(*status)), None),
            Ok(status) => (false, Some(i64::from(*status)), Some(format!("the endpoint answered {status}"))),
            Err(e) => (false, None, Some(e.clone())),
        };
        let retry_at = if delivered { None } else { self.retry_at(d.attempts + 1) };
        let outcome = AttemptOutcome { delivered, status_code, error: error.as_deref(), latency_ms, retry_at };
        let policy =
            DisablePolicy { after_failures: i64::from(self.settings.disable_after), after_ms: DISABLE_AFTER_MS };
        metrics::counter!("mailroom_tenant_webhook_attempts_total", "outcome" => if delivered { "delivered" } else { "failed" })
            .increment(1);
        if !delivered {
            tracing::info!(delivery = %d.id, endpoint = %d.endpoint_id, attempt = d.attempts + 1, error = error.as_deref().unwrap_or(""), "webhook delivery failed");
        }
        if self.store.record_attempt(d, &outcome, &policy).await? {
            tracing::warn!(endpoint = %d.endpoint_id, tenant = %d.tenant_id, "webhook endpoint disabled after failing");
        }
        Ok(())
    }

    /// When to try again after the `failures`-th failure, or `None` when the schedule is spent.
    fn retry_at(&self, failures: i64) -> Option<i64> {
        let index = usize::try_from(failures - 1).ok()?;
        let secs = *RETRY_SCHEDULE_SECS.get(index)?;
        let delay_ms = (secs as f64 * 1000.0 * self.settings.retry_scale) as i64;
        Some(self.store.now_ms() + delay_ms)
    }

    /// Posts the delivery; the status code, or why there was none.
    async fn send(&self, d: &ClaimedDelivery) -> Result<u16, String> {
        // A delivery without an endpoint is an alert to the operator.
        let operator;
        let (d, http) = if d.endpoint_id.is_empty() {
            let alert = self.settings.alert.as_ref().ok_or("MAILROOM_ALERT_WEBHOOK_URL is not set")?;
            operator = ClaimedDelivery {
                url: alert.url.clone(),
                secret: alert.secret.clone(),
                previous_secret: None,
                previous_secret_expires_at: None,
                ..d.clone()
            };
            (&operator, &self.operator_http)
        } else {
            (d, &self.http)
        };
        let url = url::Url::parse(&d.url).map_err(|e| format!("invalid URL: {e}"))?;
        if !d.endpoint_id.is_empty() {
            guard::check_literal_host(&url, self.settings.allow_private)?;
        }
        let now = now_ms();
        let timestamp = now / 1000;
        let signature = signature_header(d, timestamp, now)?;
        let response = http
            .post(url)
            .header(standardwebhooks::HEADER_WEBHOOK_ID, &d.id)
            .header(standardwebhooks::HEADER_WEBHOOK_TIMESTAMP, timestamp.to_string())
            .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(d.payload.clone())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        Ok(response.status().as_u16())
    }
}

/// One claiming loop; the attempts it starts run on their own, and shutdown
/// lets those in flight finish (within the grace). Independent of the outbox:
/// a slow tenant endpoint never holds up mail.
impl crate::workers::Worker for Notifier {
    fn name(&self) -> &'static str {
        "tenant_webhooks"
    }

    fn step(&self) -> futures::future::BoxFuture<'_, anyhow::Result<crate::workers::Step>> {
        Box::pin(async move {
            Ok(match self.try_deliver_once().await? {
                Step::Empty => crate::workers::Step::Idle,
                Step::Started(_) => crate::workers::Step::Worked,
            })
        })
    }

    fn cadence(&self) -> crate::workers::Cadence {
        crate::workers::Cadence::Queue {
            idle: Duration::from_millis(200),
            after_error: Duration::from_secs(1),
            // A slot freed: claim again at once.
            wake: Some(self.finished.clone()),
        }
    }

    fn in_flight(&self) -> usize {
        Notifier::in_flight(self)
    }

    fn stop(&self) -> crate::workers::Stop {
        crate::workers::Stop::Finish {
            grace: Duration::from_secs(15),
            overdue: "webhook deliveries in flight did not finish; they are retried after their lease",
        }
    }

    fn failed(&self, error: &anyhow::Error) {
        tracing::error!(error = ?error, "webhook delivery step failed");
    }
}

/// A request error with its causes ("error sending request: ... : refused to call ..."),
/// which reqwest's own message leaves out.
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() { "timed out".to_owned() } else { e.to_string() };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(previous: Option<(&str, i64)>) -> ClaimedDelivery {
        ClaimedDelivery {
            id: "0192f0c4-0000-7000-8000-000000000001".into(),
            endpoint_id: "e".into(),
            tenant_id: "t".into(),
            url: "http://x".into(),
            secret: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into(),
            previous_secret: previous.map(|p| p.0.to_owned()),
            previous_secret_expires_at: previous.map(|p| p.1),
            payload: r#"{"type":"webhook.test"}"#.into(),
            attempts: 0,
            claim_token: String::new(),
            enabled: 1,
        }
    }

    #[test]
    fn a_signature_verifies_with_the_standard_webhooks_library() {
        let d = delivery(None);
        let ts = now_ms() / 1000;
        let sig = signature_header(&d, ts, now_ms()).unwrap();
        let mut h = axum::http::HeaderMap::new();
        h.insert("webhook-id", d.id.parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        Webhook::new(&d.secret).unwrap().verify(d.payload.as_bytes(), &h).unwrap();
    }

    #[test]
    fn the_previous_secret_signs_too_until_its_overlap_ends() {
        let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let now = now_ms();
        assert_eq!(signature_header(&delivery(Some((old, now + 1000))), 1, now).unwrap().split(' ').count(), 2);
        assert_eq!(signature_header(&delivery(Some((old, now - 1))), 1, now).unwrap().split(' ').count(), 1);
    }

    #[test]
    fn a_new_secret_is_whsec_and_32_random_bytes() {
        let s = new_secret();
        let raw = base64::engine::general_purpose::STANDARD.decode(s.strip_prefix("whsec_").unwrap()).unwrap();
        assert_eq!(raw.len(), 32);
        assert_ne!(s, new_secret());
    }
}
