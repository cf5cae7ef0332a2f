//! A Resend-compatible mock server for tests, benchmarks and local development.
//!
//! It validates like Resend (auth, User-Agent, field rules, batch limits), keeps
//! idempotency keys (replay, 409 on a changed body or a concurrent request),
//! enforces a per-second rate limit with Resend's headers, injects faults (5xx,
//! 429, accept-then-drop-the-connection), emits signed webhooks, and records
//! every accepted email so tests can count duplicates and losses.

mod handlers;
pub mod llm;
pub mod sink;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::net::TcpListener;

use crate::provider::DomainInfo;

/// Faults injected into send requests, each a share from 0 to 1 (spread evenly,
/// so runs repeat).
#[derive(Clone, Debug, Default, clap::Args, serde::Deserialize, Serialize)]
pub struct Faults {
    /// Share of send requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    #[serde(default)]
    pub fail_rate: f64,
    /// Share of send requests answered 429 with `retry-after: 1`.
    #[arg(long, default_value_t = 0.0)]
    #[serde(default)]
    pub throttle_rate: f64,
    /// Share of send requests accepted and recorded, then the connection dropped before the answer.
    #[arg(long, default_value_t = 0.0)]
    #[serde(default)]
    pub drop_rate: f64,
    /// Milliseconds every send request takes before its answer (after it is
    /// accepted), e.g. longer than a worker's lease.
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub latency_ms: u64,
    /// Send request bodies larger than this many bytes are answered 413 (0: no limit).
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub max_body_bytes: usize,
    /// Accept send requests but answer 200 without any ids (a broken answer).
    #[arg(long, default_value_t = false)]
    #[serde(default)]
    pub empty_answers: bool,
    /// Answer every send request 429 `daily_quota_exceeded`.
    #[arg(long, default_value_t = false)]
    #[serde(default)]
    pub quota_exceeded: bool,
    /// Answer domain calls 403 `restricted_api_key` (a key with sending access only).
    #[arg(long, default_value_t = false)]
    #[serde(default)]
    pub domain_key_restricted: bool,
    /// Answer every request 403 `invalid_api_key` (a revoked key).
    #[arg(long, default_value_t = false)]
    #[serde(default)]
    pub key_revoked: bool,
    /// Addresses (exact, case-insensitive) answered 422 `validation_error`.
    #[arg(long = "reject", value_delimiter = ',')]
    #[serde(default)]
    pub reject: Vec<String>,
}

#[derive(Clone, Debug, Default, clap::Args)]
pub struct MockConfig {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 3001)]
    pub port: u16,
    /// The only API key accepted; any `re_...` key when absent.
    #[arg(long)]
    pub api_key: Option<String>,
    /// Requests per second across all keys, as Resend's per-team limit (0: none).
    #[arg(long, default_value_t = 0)]
    pub rate_limit: u32,
    /// Where to POST signed delivery webhooks for accepted emails.
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// `whsec_...` secret to sign webhooks with.
    #[arg(long)]
    pub webhook_secret: Option<String>,
    #[command(flatten)]
    pub faults: Faults,
}

/// One email the mock accepted.
#[derive(Clone, Debug, Serialize)]
pub struct AcceptedEmail {
    pub id: String,
    pub idempotency_key: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub html: Option<String>,
    pub text: Option<String>,
    pub tags: Vec<crate::provider::EmailTag>,
    /// Custom headers (`List-Unsubscribe`, ...).
    pub headers: std::collections::BTreeMap<String, String>,
    pub user_agent: String,
    pub authorization: String,
    /// When the mock accepted it (epoch ms).
    pub accepted_at_ms: i64,
}

/// Counters tests assert on.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MockStats {
    pub requests: u64,
    pub send_requests: u64,
    pub accepted_requests: u64,
    pub http_429: u64,
    pub http_5xx: u64,
    pub dropped: u64,
    pub replayed: u64,
    /// Answered 413 (too large), 429 quota, 401/403 (key).
    pub http_413: u64,
    pub quota_refusals: u64,
    pub key_refusals: u64,
    pub largest_batch: usize,
    /// The largest send request body accepted, in bytes.
    pub largest_body_bytes: usize,
    /// The most send requests seen within one second.
    pub peak_requests_per_second: u32,
    /// When each accepted send request arrived (epoch ms), in order.
    #[serde(skip)]
    pub accepted_request_times: Vec<i64>,
}

enum KeyState {
    InFlight { hash: String },
    Done { hash: String, status: u16, body: String },
}

#[derive(Default)]
struct Inner {
    accepted: Vec<AcceptedEmail>,
    keys: HashMap<String, KeyState>,
    domains: HashMap<String, (DomainInfo, bool)>,
    stats: MockStats,
    window_second: i64,
    window_count: u32,
    faults: Faults,
    /// Send requests seen, for spreading injected faults.
    fault_tick: u64,
    /// Where signed webhooks go, and the secret they are signed with.
    webhook: Option<(String, String)>,
}

#[derive(Clone)]
pub struct MockState {
    inner: Arc<Mutex<Inner>>,
    config: Arc<MockConfig>,
    http: reqwest::Client,
}

impl MockState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock only happens in a failing test; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running mock.
pub struct MockResend {
    addr: SocketAddr,
    state: MockState,
    task: tokio::task::JoinHandle<()>,
}

impl MockResend {
    pub async fn start(config: MockConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let webhook = config.webhook_url.clone().zip(config.webhook_secret.clone());
        let inner = Inner { faults: config.faults.clone(), webhook, ..Inner::default() };
        let state =
            MockState { inner: Arc::new(Mutex::new(inner)), config: Arc::new(config), http: reqwest::Client::new() };
        let router = handlers::router(state.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "mock Resend stopped");
            }
        });
        Ok(Self { addr, state, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn accepted(&self) -> Vec<AcceptedEmail> {
        self.state.lock().accepted.clone()
    }

    /// Whether an email with this subject was accepted (without copying the record).
    pub fn has_subject(&self, subject: &str) -> bool {
        self.state.lock().accepted.iter().any(|e| e.subject == subject)
    }

    pub fn accepted_count(&self) -> usize {
        self.state.lock().accepted.len()
    }

    pub fn stats(&self) -> MockStats {
        self.state.lock().stats.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.state.lock().faults = faults;
    }

    /// Sends signed delivery webhooks for accepted emails to `url` from now on.
    pub fn set_webhook(&self, url: &str, secret: &str) {
        self.state.lock().webhook = Some((url.to_owned(), secret.to_owned()));
    }
}

impl Drop for MockResend {
    fn drop(&mut self) {
        self.task.abort();
    }
}
