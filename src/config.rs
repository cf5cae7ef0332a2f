//! Typed configuration, read from the environment (and `.env` when present).
//!
//! Every field here is documented in the README's configuration table; the
//! names and defaults follow DESIGN.md.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{bail, Context};

pub mod settings;

/// Which delivery provider sends the mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// Resend's REST API at `resend_base_url`.
    Resend,
    /// In-process provider: accepts everything and generates delivery events.
    Sandbox,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `DATABASE_URL`: `sqlite://mailroom.db` (created if missing) or `postgres://...`.
    pub database_url: String,
    /// `MAILROOM_BIND`: listen address of the HTTP API.
    pub bind: SocketAddr,
    /// `MAILROOM_ADMIN_KEY`: operator key. When absent, one is generated at first
    /// start, printed once, and only its hash is stored.
    pub admin_key: Option<String>,
    /// `MAILROOM_PROVIDER`: `resend` or `sandbox`; defaults to `resend` when
    /// `RESEND_API_KEY` is set, else `sandbox`.
    pub provider: ProviderKind,
    /// `RESEND_API_KEY`: the account's Resend key (`re_...`).
    pub resend_api_key: Option<String>,
    /// `RESEND_BASE_URL`: where the Resend API lives; point it at a mock for tests.
    pub resend_base_url: String,
    /// `WEBHOOK_SECRET`: Resend signing secrets (`whsec_...`), comma-separated for rotation.
    pub webhook_secrets: Vec<String>,
    /// `PUBLIC_URL`: base URL of this service as recipients and Resend see it;
    /// by default `http://` + the address the server listens on ([`local_url`]).
    pub public_url: String,
    /// Whether `PUBLIC_URL` was set; when not, the server sets `public_url`
    /// from the address it bound ([`Config::follow_bound_address`]).
    pub public_url_set: bool,
    /// `MAILROOM_SEND_RATE`: provider requests per second for the whole account,
    /// shared by every process on the database (0: unpaced, for local mocks).
    pub send_rate: u32,
    /// `MAILROOM_CAMPAIGN_SHARE`: most of the send rate (0.05–1) campaign mail
    /// may use while transactional mail is waiting.
    pub campaign_share: f64,
    /// `MAILROOM_MAX_ATTEMPTS`: provider attempts per batch before its messages
    /// become dead letters.
    pub max_attempts: u32,
    /// `MAILROOM_LEASE_SECS`: how long a claimed batch stays its worker's
    /// without renewal (a live worker renews it while it waits); a dead worker's
    /// batch is sent again (with the same idempotency key) after this.
    pub lease_secs: u64,
    /// `MAILROOM_RETRY_BASE_MS`: first retry delay after a retryable provider
    /// failure; each further retry waits four times longer (with jitter).
    pub retry_base_ms: u64,
    /// `MAILROOM_MAX_BATCH_BYTES`: largest request body sent to the provider
    /// (default 5,000,000); a campaign with a large body goes in smaller batches,
    /// and a batch the provider still finds too large (413) is split.
    pub max_batch_bytes: usize,
    /// `MAILROOM_WORKER_CONCURRENCY`: provider requests in flight per process.
    pub worker_concurrency: usize,
    /// `MAILROOM_DB_MAX_CONNECTIONS`: database pool size.
    pub db_max_connections: u32,
    /// `MAILROOM_DOMAIN_POLL_SECS`: how often pending domains are re-checked.
    pub domain_poll_secs: u64,
    /// `MAILROOM_ALLOW_UNSIGNED_WEBHOOKS`: accept `POST /webhooks/resend` without
    /// a signature when no `WEBHOOK_SECRET` is set. For local development only:
    /// an unsigned event can bounce (and so suppress) any address. Default false.
    pub allow_unsigned_webhooks: bool,
    /// `MAILROOM_METRICS_TOKEN`: a bearer token that may read `/metrics` and
    /// nothing else (for a Prometheus scraper). The admin key may read it too.
    pub metrics_token: Option<String>,
    /// `MAILROOM_DNS_RESOLVER`: the DNS server (`host:port`) mailroom asks
    /// about tenants' SPF, DKIM, DMARC and return-path records; default: the
    /// system's resolver.
    pub dns_resolver: Option<std::net::SocketAddr>,
    /// `MAILROOM_MAX_HTML_BYTES`: largest `html` (and `text`) a send accepts
    /// (default 524,288: 512 KiB); larger is a 413. Gmail clips messages over
    /// about 100 KB anyway.
    pub max_html_bytes: usize,
    /// `MAILROOM_RENDER_BIN`: the mailroom binary that renders tenants'
    /// templates in child processes (`mailroom render-worker`); by default this
    /// process's own binary. Only tests that embed the server need to set it.
    pub render_bin: Option<std::path::PathBuf>,
    /// `MAILROOM_RENDER_MEMORY_MB`: the address space a render worker may use
    /// (default 256); a template that needs more fails as a runaway template.
    pub render_memory_mb: u64,
    /// `MAILROOM_RENDER_TIMEOUT_MS`: how long one render job (a template for
    /// up to a claim's recipients) may take (default 2,000).
    pub render_timeout_ms: u64,
    /// `MAILROOM_SECRET`: signs unsubscribe links (at least 32 characters).
    /// When absent, one is generated at first start and kept in the database,
    /// so links stay valid across restarts and across processes.
    pub secret: Option<String>,
    /// `MAILROOM_ALLOW_PRIVATE_WEBHOOKS`: let tenants' webhook endpoints be
    /// loopback, private, link-local or metadata addresses. For local
    /// development and tests only: otherwise a tenant could make mailroom call
    /// into the operator's own network (SSRF). Default false.
    pub allow_private_webhooks: bool,
    /// `MAILROOM_WEBHOOK_RETRY_SCALE`: multiplies the retry schedule of webhooks
    /// to tenants (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h); default 1. Tests
    /// set a small value so that retries come within milliseconds.
    pub webhook_retry_scale: f64,
    /// `MAILROOM_WEBHOOK_DISABLE_AFTER`: consecutive failed deliveries after
    /// which a tenant's endpoint is disabled (default 100; five days of failing
    /// disables it too).
    pub webhook_disable_after: u32,
    /// `MAILROOM_WEBHOOK_ENDPOINT_CONCURRENCY`: deliveries in flight to one
    /// tenant endpoint at most, across every process (default 2).
    pub webhook_endpoint_concurrency: u32,
    /// `MAILROOM_WEBHOOK_TENANT_CONCURRENCY`: deliveries in flight to one
    /// tenant's endpoints together at most, across every process (default 8).
    pub webhook_tenant_concurrency: u32,
    /// `MAILROOM_WEBHOOK_MANUAL_PER_MINUTE`: test events and replays one
    /// endpoint may be sent per minute (default 10, in a burst or spread out);
    /// past it, `429` with `Retry-After`.
    pub webhook_manual_per_minute: u32,
    /// `MAILROOM_SOFT_BOUNCE_LIMIT`: transient (soft) bounces of one contact
    /// within `MAILROOM_SOFT_BOUNCE_DAYS` that suppress it as `soft_bounced`
    /// (default 3).
    pub soft_bounce_limit: u32,
    /// `MAILROOM_SOFT_BOUNCE_DAYS`: the window, in days, in which soft bounces
    /// count towards `MAILROOM_SOFT_BOUNCE_LIMIT` (default 30).
    pub soft_bounce_days: u32,
    /// `MAILROOM_REPUTATION_MIN_SENT`: emails a tenant must have sent within
    /// the window before its bounce and complaint rates are judged (default 200).
    pub reputation_min_sent: u32,
    /// `MAILROOM_REPUTATION_WINDOW_DAYS`: the rolling window of the rates, in
    /// days (default 7; counted in whole hours, the current one included).
    pub reputation_window_days: u32,
    /// `MAILROOM_REPUTATION_BOUNCE_WARNING_PERCENT`: hard-bounce rate (hard
    /// bounces / sent) at which a tenant is in `warning` (default 2).
    pub reputation_bounce_warning_percent: f64,
    /// `MAILROOM_REPUTATION_BOUNCE_PAUSE_PERCENT`: hard-bounce rate at which a
    /// tenant's campaign mail is paused (default 4: Resend's own account limit).
    pub reputation_bounce_pause_percent: f64,
    /// `MAILROOM_REPUTATION_COMPLAINT_WARNING_PERCENT`: complaint rate
    /// (complaints / delivered) at which a tenant is in `warning` (default 0.04).
    pub reputation_complaint_warning_percent: f64,
    /// `MAILROOM_REPUTATION_COMPLAINT_PAUSE_PERCENT`: complaint rate at which a
    /// tenant's campaign mail is paused (default 0.08: Resend's own account limit).
    pub reputation_complaint_pause_percent: f64,
    /// `MAILROOM_REPUTATION_SWEEP_SECS`: how often the worker re-evaluates every
    /// tenant (figures leaving the window, warnings clearing); bounces and
    /// complaints are evaluated as soon as they are stored (default 60).
    pub reputation_sweep_secs: u64,
    /// `MAILROOM_PENDING_DAYS`: how long a pending contact (double opt-in not
    /// confirmed) is kept before it is forgotten, leaving only a keyed hash
    /// of its address for the signup rate limit (default 7).
    pub pending_days: u64,
    /// `MAILROOM_ALERT_WEBHOOK_URL`: where the operator is alerted (signed per
    /// Standard Webhooks, like webhooks to tenants, from the same durable queue)
    /// when a tenant's reputation state changes. Unset: alerts go to the log only.
    pub alert_webhook_url: Option<String>,
    /// `MAILROOM_ALERT_WEBHOOK_SECRET`: the `whsec_...` secret that signs those
    /// alerts; required with `MAILROOM_ALERT_WEBHOOK_URL`.
    pub alert_webhook_secret: Option<String>,
    /// The language model behind automations' `agent` action: `MAILROOM_LLM_URL`,
    /// `MAILROOM_LLM_API`, `MAILROOM_LLM_API_KEY`, `MAILROOM_LLM_MODEL`,
    /// `MAILROOM_LLM_TIMEOUT_MS`. `None` when no URL is set: `agent` rules are refused.
    pub llm: Option<LlmSettings>,
    /// `MAILROOM_AGENT_DAILY_CAP`: emails the `agent` action may send per
    /// tenant per UTC day (default 100).
    pub agent_daily_cap: u32,
    /// `MAILROOM_AGENT_CONCURRENCY`: agent runs carried out at once in this
    /// process, beside the other rules (default 8; at most 2 per tenant).
    pub agent_concurrency: usize,
    /// `MAILROOM_AGENT_DAILY_CALLS`: model calls the `agent` action may make
    /// per tenant per UTC day (default 1000); the operator may set another
    /// figure per tenant (`agent_daily_calls` on the customer).
    pub agent_daily_calls: u32,
    /// `MAILROOM_TRUSTED_PROXIES`: reverse proxies (comma-separated addresses
    /// or CIDR ranges) whose `X-Forwarded-For` names the client; default none,
    /// and the client is the connection's peer. Failed sign-ins are throttled
    /// per client address.
    pub trusted_proxies: crate::domain::TrustedProxies,
    /// `DEBUG`: verbose logs (still no addresses or bodies at info level).
    pub debug: bool,
}

/// Where the `agent` action's model is, and how it is spoken to.
#[derive(Clone, Debug)]
pub struct LlmSettings {
    /// `MAILROOM_LLM_URL`: the endpoint, or the server (`/v1/chat/completions`
    /// or `/v1/messages` is added).
    pub url: String,
    /// `MAILROOM_LLM_API`: `openai` (chat completions with tools, the default) or `anthropic` (Messages).
    pub api: crate::llm::LlmApi,
    /// `MAILROOM_LLM_API_KEY`: sent as a bearer token (OpenAI) or `x-api-key` (Anthropic).
    pub api_key: Option<String>,
    /// `MAILROOM_LLM_MODEL`: required with a URL.
    pub model: String,
    /// `MAILROOM_LLM_TIMEOUT_MS`: how long one decision may take before the
    /// rule's fallback runs (default 10,000).
    pub timeout_ms: u64,
}

impl Config {
    /// The reputation guard's policy from these settings.
    pub fn reputation_policy(&self) -> crate::domain::ReputationPolicy {
        use crate::domain::reputation::percent_to_ppm;
        crate::domain::ReputationPolicy {
            min_sent: i64::from(self.reputation_min_sent),
            window_ms: i64::from(self.reputation_window_days) * 24 * 3_600_000,
            bounce_warning_ppm: percent_to_ppm(self.reputation_bounce_warning_percent),
            bounce_pause_ppm: percent_to_ppm(self.reputation_bounce_pause_percent),
            complaint_warning_ppm: percent_to_ppm(self.reputation_complaint_warning_percent),
            complaint_pause_ppm: percent_to_ppm(self.reputation_complaint_pause_percent),
            alert_operator: self.alert_webhook_url.is_some(),
        }
    }
}

/// A `(warning, pause)` pair of percentages: each above 0 and at most 100,
/// the warning no higher than the pause.
fn percent_pair(
    get: &impl Fn(&str) -> Option<String>,
    warning: (&str, f64),
    pause: (&str, f64),
) -> anyhow::Result<(f64, f64)> {
    let w: f64 = parse_number(get(warning.0), warning.0, warning.1)?;
    let p: f64 = parse_number(get(pause.0), pause.0, pause.1)?;
    for (name, v) in [(warning.0, w), (pause.0, p)] {
        if !(v.is_finite() && v > 0.0 && v <= 100.0) {
            bail!("{name} must be a percentage above 0 and at most 100, like 4 or 0.08");
        }
    }
    if w > p {
        bail!("{} must not be above {}", warning.0, pause.0);
    }
    Ok((w, p))
}

impl Config {
    /// Reads the process environment, after loading `.env` if one exists.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_env_with(&[])
    }

    /// As [`Config::from_env`], with `overrides` (command-line flags such as
    /// `serve --bind`) beating the environment.
    pub fn from_env_with(overrides: &[(&str, String)]) -> anyhow::Result<Self> {
        // A missing .env is the normal case; a malformed one is worth failing on.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(e).context("Failed to read .env"),
        }
        Self::from_lookup(|name| {
            overrides.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()).or_else(|| std::env::var(name).ok())
        })
    }

    /// Once the server has bound `addr` (port 0 becomes a real port): an unset
    /// `PUBLIC_URL` follows it, so links point at this server.
    pub fn follow_bound_address(&mut self, addr: SocketAddr) {
        if !self.public_url_set {
            self.public_url = local_url(addr);
        }
    }

    /// Why the public URL in use may not be what recipients reach: a bind to
    /// every interface with no `PUBLIC_URL` set.
    pub fn public_url_warning(&self) -> Option<String> {
        (!self.public_url_set && self.bind.ip().is_unspecified()).then(|| {
            format!(
                "MAILROOM_BIND is {} and PUBLIC_URL is not set: links in mail and previews point at {}, which only \
                 this machine reaches; set PUBLIC_URL to the address recipients reach",
                self.bind, self.public_url
            )
        })
    }

    /// Builds a config from any name -> value lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let resend_api_key = get("RESEND_API_KEY");
        let provider = match get("MAILROOM_PROVIDER").as_deref() {
            Some("resend") => ProviderKind::Resend,
            Some("sandbox") => ProviderKind::Sandbox,
            Some(other) => bail!("MAILROOM_PROVIDER must be `resend` or `sandbox`, not `{other}`"),
            None if resend_api_key.is_some() => ProviderKind::Resend,
            None => ProviderKind::Sandbox,
        };
        if provider == ProviderKind::Resend && resend_api_key.is_none() {
            bail!("MAILROOM_PROVIDER=resend needs RESEND_API_KEY");
        }
        let bind = get("MAILROOM_BIND").unwrap_or_else(|| "127.0.0.1:8000".into());
        let bind: SocketAddr =
            bind.parse().with_context(|| format!("MAILROOM_BIND `{bind}` is not an address like 127.0.0.1:8000"))?;
        let send_rate = parse_number(get("MAILROOM_SEND_RATE"), "MAILROOM_SEND_RATE", 10)?;
        // Three attempts over about 15 minutes: now, ~3 min later, ~12 min after that.
        let max_attempts = parse_number(get("MAILROOM_MAX_ATTEMPTS"), "MAILROOM_MAX_ATTEMPTS", 3)?;
        let campaign_share: f64 = parse_number(get("MAILROOM_CAMPAIGN_SHARE"), "MAILROOM_CAMPAIGN_SHARE", 0.8)?;
        if !(0.05..=1.0).contains(&campaign_share) {
            bail!("MAILROOM_CAMPAIGN_SHARE must be between 0.05 and 1");
        }
        let lease_secs = parse_number(get("MAILROOM_LEASE_SECS"), "MAILROOM_LEASE_SECS", 60)?;
        let retry_base_ms = parse_number(get("MAILROOM_RETRY_BASE_MS"), "MAILROOM_RETRY_BASE_MS", 180_000)?;
        let max_batch_bytes = parse_number(get("MAILROOM_MAX_BATCH_BYTES"), "MAILROOM_MAX_BATCH_BYTES", 5_000_000)?;
        let worker_concurrency = parse_number(get("MAILROOM_WORKER_CONCURRENCY"), "MAILROOM_WORKER_CONCURRENCY", 4)?;
        let db_max_connections = parse_number(get("MAILROOM_DB_MAX_CONNECTIONS"), "MAILROOM_DB_MAX_CONNECTIONS", 10)?;
        let domain_poll_secs = parse_number(get("MAILROOM_DOMAIN_POLL_SECS"), "MAILROOM_DOMAIN_POLL_SECS", 60)?;
        let allow_unsigned_webhooks = matches!(
            get("MAILROOM_ALLOW_UNSIGNED_WEBHOOKS").as_deref().map(str::to_ascii_lowercase).as_deref(),
            Some("1" | "true" | "yes" | "on")
        );
        let dns_resolver = get("MAILROOM_DNS_RESOLVER")
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("MAILROOM_DNS_RESOLVER must be an address like 127.0.0.1:53"))
            })
            .transpose()?;
        let trusted_proxies = crate::domain::TrustedProxies::parse(
            &get("MAILROOM_TRUSTED_PROXIES").unwrap_or_default(),
        )
        .map_err(|e| anyhow::anyhow!("MAILROOM_TRUSTED_PROXIES: {e} (comma-separated addresses or CIDR ranges)"))?;
        let max_html_bytes = parse_number(get("MAILROOM_MAX_HTML_BYTES"), "MAILROOM_MAX_HTML_BYTES", 524_288)?;
        let render_memory_mb: u64 = parse_number(get("MAILROOM_RENDER_MEMORY_MB"), "MAILROOM_RENDER_MEMORY_MB", 256)?;
        if render_memory_mb < 64 {
            bail!("MAILROOM_RENDER_MEMORY_MB must be at least 64 (a render worker needs that much to start)");
        }
        let render_timeout_ms = parse_number(get("MAILROOM_RENDER_TIMEOUT_MS"), "MAILROOM_RENDER_TIMEOUT_MS", 2_000)?;
        let soft_bounce_limit = parse_number(get("MAILROOM_SOFT_BOUNCE_LIMIT"), "MAILROOM_SOFT_BOUNCE_LIMIT", 3)?;
        let soft_bounce_days = parse_number(get("MAILROOM_SOFT_BOUNCE_DAYS"), "MAILROOM_SOFT_BOUNCE_DAYS", 30)?;
        let admin_key = get("MAILROOM_ADMIN_KEY");
        if let Some(key) = &admin_key {
            if key.trim().chars().count() < MIN_ADMIN_KEY_CHARS {
                bail!(
                    "MAILROOM_ADMIN_KEY must be at least {MIN_ADMIN_KEY_CHARS} characters (it guards every \
                     customer); generate one with `openssl rand -hex 24`"
                );
            }
        }
        let secret = get("MAILROOM_SECRET");
        if secret.as_deref().is_some_and(|s| s.trim().chars().count() < MIN_ADMIN_KEY_CHARS) {
            bail!(
                "MAILROOM_SECRET must be at least {MIN_ADMIN_KEY_CHARS} characters (it signs unsubscribe links); \
                 generate one with `openssl rand -hex 32`"
            );
        }
        let allow_private_webhooks = matches!(
            get("MAILROOM_ALLOW_PRIVATE_WEBHOOKS").as_deref().map(str::to_ascii_lowercase).as_deref(),
            Some("1" | "true" | "yes" | "on")
        );
        let webhook_retry_scale: f64 =
            parse_number(get("MAILROOM_WEBHOOK_RETRY_SCALE"), "MAILROOM_WEBHOOK_RETRY_SCALE", 1.0)?;
        if !(webhook_retry_scale.is_finite() && webhook_retry_scale >= 0.0) {
            bail!("MAILROOM_WEBHOOK_RETRY_SCALE must be a number of at least 0");
        }
        let webhook_disable_after =
            parse_number(get("MAILROOM_WEBHOOK_DISABLE_AFTER"), "MAILROOM_WEBHOOK_DISABLE_AFTER", 100)?;
        let webhook_endpoint_concurrency: u32 =
            parse_number(get("MAILROOM_WEBHOOK_ENDPOINT_CONCURRENCY"), "MAILROOM_WEBHOOK_ENDPOINT_CONCURRENCY", 2)?;
        let webhook_tenant_concurrency: u32 =
            parse_number(get("MAILROOM_WEBHOOK_TENANT_CONCURRENCY"), "MAILROOM_WEBHOOK_TENANT_CONCURRENCY", 8)?;
        let webhook_manual_per_minute: u32 =
            parse_number(get("MAILROOM_WEBHOOK_MANUAL_PER_MINUTE"), "MAILROOM_WEBHOOK_MANUAL_PER_MINUTE", 10)?;
        let reputation_min_sent =
            parse_number(get("MAILROOM_REPUTATION_MIN_SENT"), "MAILROOM_REPUTATION_MIN_SENT", 200)?;
        let reputation_window_days: u32 =
            parse_number(get("MAILROOM_REPUTATION_WINDOW_DAYS"), "MAILROOM_REPUTATION_WINDOW_DAYS", 7)?;
        if !(1..=90).contains(&reputation_window_days) {
            bail!("MAILROOM_REPUTATION_WINDOW_DAYS must be from 1 to 90");
        }
        let (reputation_bounce_warning_percent, reputation_bounce_pause_percent) = percent_pair(
            &get,
            ("MAILROOM_REPUTATION_BOUNCE_WARNING_PERCENT", 2.0),
            ("MAILROOM_REPUTATION_BOUNCE_PAUSE_PERCENT", 4.0),
        )?;
        let (reputation_complaint_warning_percent, reputation_complaint_pause_percent) = percent_pair(
            &get,
            ("MAILROOM_REPUTATION_COMPLAINT_WARNING_PERCENT", 0.04),
            ("MAILROOM_REPUTATION_COMPLAINT_PAUSE_PERCENT", 0.08),
        )?;
        let reputation_sweep_secs: u64 =
            parse_number(get("MAILROOM_REPUTATION_SWEEP_SECS"), "MAILROOM_REPUTATION_SWEEP_SECS", 60)?;
        let pending_days: u64 = parse_number(get("MAILROOM_PENDING_DAYS"), "MAILROOM_PENDING_DAYS", 7)?;
        let alert_webhook_url = get("MAILROOM_ALERT_WEBHOOK_URL").map(|u| u.trim().to_owned());
        if let Some(u) = &alert_webhook_url {
            let parsed = url::Url::parse(u).map_err(|e| anyhow::anyhow!("MAILROOM_ALERT_WEBHOOK_URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                bail!("MAILROOM_ALERT_WEBHOOK_URL must be an http(s) URL");
            }
        }
        let alert_webhook_secret = get("MAILROOM_ALERT_WEBHOOK_SECRET").map(|s| s.trim().to_owned());
        match (&alert_webhook_url, &alert_webhook_secret) {
            (Some(_), None) => bail!(
                "MAILROOM_ALERT_WEBHOOK_URL needs MAILROOM_ALERT_WEBHOOK_SECRET (`whsec_` and base64 of 24 to 64 \
                 random bytes: `echo whsec_$(openssl rand -base64 32)`)"
            ),
            (_, Some(secret)) => {
                let raw = secret
                    .strip_prefix("whsec_")
                    .map(|k| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, k).unwrap_or_default());
                if !raw.is_some_and(|r| (24..=64).contains(&r.len())) {
                    bail!("MAILROOM_ALERT_WEBHOOK_SECRET must be `whsec_` and base64 of 24 to 64 random bytes");
                }
            }
            (None, None) => {}
        }
        let llm = match get("MAILROOM_LLM_URL") {
            None => None,
            Some(url) => {
                url::Url::parse(url.trim())
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .with_context(|| format!("MAILROOM_LLM_URL `{url}` is not an http(s) URL"))?;
                let api = match get("MAILROOM_LLM_API") {
                    None => crate::llm::LlmApi::OpenAi,
                    Some(raw) => crate::llm::LlmApi::parse(&raw)
                        .with_context(|| format!("MAILROOM_LLM_API must be `openai` or `anthropic`, not `{raw}`"))?,
                };
                let model = get("MAILROOM_LLM_MODEL").context(
                    "MAILROOM_LLM_URL is set but MAILROOM_LLM_MODEL is not: name the model the agent action uses",
                )?;
                let timeout_ms = parse_number(get("MAILROOM_LLM_TIMEOUT_MS"), "MAILROOM_LLM_TIMEOUT_MS", 10_000)?;
                Some(LlmSettings {
                    url: url.trim().to_owned(),
                    api,
                    api_key: get("MAILROOM_LLM_API_KEY"),
                    model: model.trim().to_owned(),
                    timeout_ms: timeout_ms.max(1),
                })
            }
        };
        let agent_daily_cap = parse_number(get("MAILROOM_AGENT_DAILY_CAP"), "MAILROOM_AGENT_DAILY_CAP", 100)?;
        let agent_concurrency: usize =
            parse_number(get("MAILROOM_AGENT_CONCURRENCY"), "MAILROOM_AGENT_CONCURRENCY", 8)?;
        let agent_daily_calls = parse_number(get("MAILROOM_AGENT_DAILY_CALLS"), "MAILROOM_AGENT_DAILY_CALLS", 1_000)?;
        let debug = matches!(
            get("DEBUG").as_deref().map(str::to_ascii_lowercase).as_deref(),
            Some("1" | "true" | "yes" | "on")
        );
        Ok(Self {
            database_url: get("DATABASE_URL").unwrap_or_else(|| "sqlite://mailroom.db".into()),
            bind,
            admin_key,
            provider,
            resend_api_key,
            resend_base_url: get("RESEND_BASE_URL")
                .unwrap_or_else(|| "https://api.resend.com".into())
                .trim_end_matches('/')
                .to_owned(),
            webhook_secrets: get("WEBHOOK_SECRET")
                .map(|s| s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect())
                .unwrap_or_default(),
            public_url_set: get("PUBLIC_URL").is_some(),
            public_url: get("PUBLIC_URL").unwrap_or_else(|| local_url(bind)).trim_end_matches('/').to_owned(),
            send_rate,
            campaign_share,
            max_attempts: max_attempts.max(1),
            lease_secs: lease_secs.max(1),
            retry_base_ms,
            max_batch_bytes: max_batch_bytes.max(1024),
            worker_concurrency: worker_concurrency.max(1),
            db_max_connections: db_max_connections.max(2),
            domain_poll_secs: domain_poll_secs.max(1),
            max_html_bytes: max_html_bytes.max(1024),
            render_bin: get("MAILROOM_RENDER_BIN").map(Into::into),
            render_memory_mb,
            render_timeout_ms: render_timeout_ms.max(100),
            allow_unsigned_webhooks,
            metrics_token: get("MAILROOM_METRICS_TOKEN"),
            dns_resolver,
            secret,
            allow_private_webhooks,
            webhook_retry_scale,
            webhook_disable_after: webhook_disable_after.max(1),
            webhook_endpoint_concurrency: webhook_endpoint_concurrency.max(1),
            webhook_tenant_concurrency: webhook_tenant_concurrency.max(1),
            webhook_manual_per_minute: webhook_manual_per_minute.max(1),
            soft_bounce_limit: soft_bounce_limit.max(1),
            soft_bounce_days: soft_bounce_days.max(1),
            reputation_min_sent,
            reputation_window_days,
            reputation_bounce_warning_percent,
            reputation_bounce_pause_percent,
            reputation_complaint_warning_percent,
            reputation_complaint_pause_percent,
            reputation_sweep_secs: reputation_sweep_secs.max(1),
            pending_days: pending_days.clamp(1, 3650),
            alert_webhook_url,
            alert_webhook_secret,
            llm,
            agent_daily_cap,
            agent_concurrency: agent_concurrency.clamp(1, 64),
            agent_daily_calls,
            trusted_proxies,
            debug,
        })
    }
}

/// `http://` + the address a server listening on `bind` answers at from this
/// machine: a bind to every interface (`0.0.0.0`, `::`) becomes `127.0.0.1`.
pub fn local_url(bind: SocketAddr) -> String {
    let ip = if bind.ip().is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { bind.ip() };
    format!("http://{}", SocketAddr::new(ip, bind.port()))
}

/// The shortest admin key accepted: guessing it must be hopeless.
pub const MIN_ADMIN_KEY_CHARS: usize = 32;

fn parse_number<T: std::str::FromStr>(value: Option<String>, name: &str, default: T) -> anyhow::Result<T> {
    match value {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| anyhow::anyhow!("{name} must be a number, not `{v}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_short_admin_key_is_refused_at_start() {
        let err = config(&[("MAILROOM_ADMIN_KEY", "too-short")]).unwrap_err();
        assert!(err.to_string().contains("at least 32"), "{err}");
        assert!(config(&[("MAILROOM_ADMIN_KEY", &"k".repeat(32))]).is_ok());
    }

    fn config(pairs: &[(&str, &str)]) -> anyhow::Result<Config> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_run_sqlite_and_sandbox_with_no_configuration() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database_url, "sqlite://mailroom.db");
        assert_eq!(c.provider, ProviderKind::Sandbox);
        assert_eq!(c.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(c.public_url, "http://127.0.0.1:8000");
        assert_eq!(c.send_rate, 10);
        assert!(c.webhook_secrets.is_empty());
    }

    #[test]
    fn public_url_follows_the_bind_and_every_interface_means_this_machine() {
        let c = config(&[("MAILROOM_BIND", "127.0.0.1:9100")]).unwrap();
        assert_eq!(c.public_url, "http://127.0.0.1:9100");
        assert!(c.public_url_warning().is_none());
        for any in ["0.0.0.0:9100", "[::]:9100"] {
            let c = config(&[("MAILROOM_BIND", any)]).unwrap();
            assert_eq!(c.public_url, "http://127.0.0.1:9100", "{any}");
            assert!(c.public_url_warning().is_some_and(|w| w.contains("PUBLIC_URL")), "{any}");
        }
        assert_eq!(config(&[("MAILROOM_BIND", "[::1]:9100")]).unwrap().public_url, "http://[::1]:9100");
        let set = config(&[("MAILROOM_BIND", "0.0.0.0:9100"), ("PUBLIC_URL", "https://mail.example.com/")]).unwrap();
        assert_eq!(set.public_url, "https://mail.example.com");
        assert!(set.public_url_warning().is_none(), "an operator who set PUBLIC_URL is not warned");
    }

    #[test]
    fn a_bound_port_replaces_port_zero_unless_public_url_is_set() {
        let mut c = config(&[("MAILROOM_BIND", "127.0.0.1:0")]).unwrap();
        c.follow_bound_address("127.0.0.1:43210".parse().unwrap());
        assert_eq!(c.public_url, "http://127.0.0.1:43210");
        let mut set = config(&[("MAILROOM_BIND", "127.0.0.1:0"), ("PUBLIC_URL", "https://m.example.com")]).unwrap();
        set.follow_bound_address("127.0.0.1:43210".parse().unwrap());
        assert_eq!(set.public_url, "https://m.example.com");
    }

    #[test]
    fn a_resend_key_selects_the_resend_provider() {
        let c = config(&[("RESEND_API_KEY", "re_123")]).unwrap();
        assert_eq!(c.provider, ProviderKind::Resend);
    }

    #[test]
    fn resend_without_a_key_is_refused() {
        assert!(config(&[("MAILROOM_PROVIDER", "resend")]).is_err());
    }

    #[test]
    fn webhook_secrets_are_split_on_commas_for_rotation() {
        let c = config(&[("WEBHOOK_SECRET", "whsec_a, whsec_b,")]).unwrap();
        assert_eq!(c.webhook_secrets, vec!["whsec_a", "whsec_b"]);
    }

    #[test]
    fn reputation_thresholds_are_percentages_in_order() {
        let c = config(&[]).unwrap();
        assert_eq!(c.reputation_policy(), crate::domain::ReputationPolicy::default());
        assert!(config(&[("MAILROOM_REPUTATION_BOUNCE_WARNING_PERCENT", "5")]).is_err(), "above the pause");
        assert!(config(&[("MAILROOM_REPUTATION_COMPLAINT_PAUSE_PERCENT", "0")]).is_err());
        assert!(config(&[("MAILROOM_REPUTATION_BOUNCE_PAUSE_PERCENT", "101")]).is_err());
    }

    #[test]
    fn an_alert_webhook_needs_a_whsec_secret() {
        let url = ("MAILROOM_ALERT_WEBHOOK_URL", "https://ops.example.com/hook");
        assert!(config(&[url]).is_err());
        assert!(config(&[url, ("MAILROOM_ALERT_WEBHOOK_SECRET", "plain")]).is_err());
        let c = config(&[url, ("MAILROOM_ALERT_WEBHOOK_SECRET", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")]).unwrap();
        assert!(c.reputation_policy().alert_operator);
        assert!(config(&[
            ("MAILROOM_ALERT_WEBHOOK_URL", "ftp://x"),
            ("MAILROOM_ALERT_WEBHOOK_SECRET", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
        ])
        .is_err());
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges_and_a_bad_one_is_refused_at_start() {
        assert!(config(&[]).unwrap().trusted_proxies.is_empty());
        let c = config(&[("MAILROOM_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7")]).unwrap();
        assert!(c.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        let err = config(&[("MAILROOM_TRUSTED_PROXIES", "10.0.0.0/8, lb.internal")]).unwrap_err();
        assert!(err.to_string().contains("MAILROOM_TRUSTED_PROXIES"), "{err}");
    }

    #[test]
    fn bad_numbers_are_reported_by_name() {
        let err = config(&[("MAILROOM_SEND_RATE", "fast")]).unwrap_err();
        assert!(err.to_string().contains("MAILROOM_SEND_RATE"));
    }
}
