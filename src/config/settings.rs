//! Every setting [`Config`](super::Config) reads, with its default, for
//! `mailroom serve --help` (the README's configuration table says more).

/// One environment variable.
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

const fn s(name: &'static str, default: &'static str, meaning: &'static str) -> Setting {
    Setting { name, default, meaning }
}

/// In the order of the README's table.
pub const SETTINGS: &[Setting] = &[
    s("DATABASE_URL", "sqlite://mailroom.db (created if missing)", "postgres://user@host/db for production"),
    s("MAILROOM_BIND", "127.0.0.1:8000", "listen address (--bind beats it)"),
    s(
        "PUBLIC_URL",
        "http:// + MAILROOM_BIND (0.0.0.0 and :: as 127.0.0.1)",
        "where recipients reach this service: unsubscribe links",
    ),
    s("MAILROOM_ADMIN_KEY", "generated, printed once at first start", "operator key, at least 32 characters"),
    s("MAILROOM_SECRET", "generated at first start, kept in the database", "signs unsubscribe links"),
    s("MAILROOM_TRUSTED_PROXIES", "none", "reverse proxies whose X-Forwarded-For names the client"),
    s("MAILROOM_METRICS_TOKEN", "none", "a bearer token that may read /metrics only"),
    s("MAILROOM_PROVIDER", "resend if RESEND_API_KEY is set, else sandbox", "delivery provider"),
    s("RESEND_API_KEY", "none", "the account's Resend key (re_...)"),
    s("RESEND_BASE_URL", "https://api.resend.com", "point at a mock for tests"),
    s("WEBHOOK_SECRET", "none", "Resend signing secret(s), whsec_..., comma-separated"),
    s("MAILROOM_ALLOW_UNSIGNED_WEBHOOKS", "false", "local development only: unsigned Resend events"),
    s("MAILROOM_SOFT_BOUNCE_LIMIT", "3", "soft bounces within the window that suppress a contact"),
    s("MAILROOM_SOFT_BOUNCE_DAYS", "30", "the soft-bounce window, in days"),
    s("MAILROOM_ALLOW_PRIVATE_WEBHOOKS", "false", "local development only: private webhook endpoints"),
    s("MAILROOM_WEBHOOK_RETRY_SCALE", "1", "multiplies the retry schedule of webhooks to customers"),
    s("MAILROOM_WEBHOOK_ENDPOINT_CONCURRENCY", "2", "deliveries in flight per endpoint"),
    s("MAILROOM_WEBHOOK_TENANT_CONCURRENCY", "8", "deliveries in flight per customer"),
    s("MAILROOM_WEBHOOK_MANUAL_PER_MINUTE", "10", "test events and replays per endpoint and minute"),
    s("MAILROOM_WEBHOOK_DISABLE_AFTER", "100", "consecutive failures that disable an endpoint"),
    s("MAILROOM_REPUTATION_MIN_SENT", "200", "emails sent in the window before rates are judged"),
    s("MAILROOM_REPUTATION_WINDOW_DAYS", "7", "the rolling window of the reputation rates"),
    s("MAILROOM_REPUTATION_BOUNCE_WARNING_PERCENT", "2", "hard-bounce rate of a warning"),
    s("MAILROOM_REPUTATION_BOUNCE_PAUSE_PERCENT", "4", "hard-bounce rate that pauses campaign mail"),
    s("MAILROOM_REPUTATION_COMPLAINT_WARNING_PERCENT", "0.04", "complaint rate of a warning"),
    s("MAILROOM_REPUTATION_COMPLAINT_PAUSE_PERCENT", "0.08", "complaint rate that pauses campaign mail"),
    s("MAILROOM_REPUTATION_SWEEP_SECS", "60", "how often every customer is re-evaluated"),
    s("MAILROOM_PENDING_DAYS", "7", "days an unconfirmed double opt-in contact is kept"),
    s("MAILROOM_ALERT_WEBHOOK_URL", "none (alerts go to the log)", "where the operator is alerted"),
    s("MAILROOM_ALERT_WEBHOOK_SECRET", "none", "whsec_... signing those alerts"),
    s("MAILROOM_SEND_RATE", "10", "provider requests per second, whole account (0: unpaced)"),
    s("MAILROOM_CAMPAIGN_SHARE", "0.8", "most of the rate campaign mail may use"),
    s("MAILROOM_MAX_ATTEMPTS", "3", "provider attempts before dead letters"),
    s("MAILROOM_RETRY_BASE_MS", "180000", "first retry delay (each next one 4x longer)"),
    s("MAILROOM_LEASE_SECS", "60", "how long a claimed batch stays its worker's"),
    s("MAILROOM_MAX_BATCH_BYTES", "5000000", "largest request body sent to the provider"),
    s("MAILROOM_MAX_HTML_BYTES", "524288", "largest html (and text) a send accepts"),
    s("MAILROOM_RENDER_MEMORY_MB", "256", "address space of each render worker"),
    s("MAILROOM_RENDER_TIMEOUT_MS", "2000", "how long one render job may take"),
    s("MAILROOM_RENDER_BIN", "this binary", "the binary that runs render workers"),
    s("MAILROOM_DNS_RESOLVER", "the system's resolver", "DNS server (host:port) for domain checks"),
    s("MAILROOM_WORKER_CONCURRENCY", "4", "provider requests in flight per process"),
    s("MAILROOM_DB_MAX_CONNECTIONS", "10", "database pool size"),
    s("MAILROOM_DOMAIN_POLL_SECS", "60", "how often pending domains are re-checked"),
    s("MAILROOM_LLM_URL", "none (agent rules refused)", "the model behind the agent action"),
    s("MAILROOM_LLM_API", "openai", "openai or anthropic"),
    s("MAILROOM_LLM_API_KEY", "none", "the model's API key"),
    s("MAILROOM_LLM_MODEL", "none (required with MAILROOM_LLM_URL)", "the model's name"),
    s("MAILROOM_LLM_TIMEOUT_MS", "10000", "how long one decision may take"),
    s("MAILROOM_AGENT_DAILY_CAP", "100", "emails the agent may send per customer per day"),
    s("MAILROOM_AGENT_CONCURRENCY", "8", "agent runs at once per process"),
    s("MAILROOM_AGENT_DAILY_CALLS", "1000", "model calls per customer per day"),
    s("DEBUG", "false", "verbose logs"),
    s("RUST_LOG", "info (debug with DEBUG)", "log filter; beats DEBUG"),
];

/// The settings as `serve --help` lists them.
pub fn help() -> String {
    let width = SETTINGS.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut out = String::from("Settings (environment variables; a .env file in the working directory is read too):\n");
    for s in SETTINGS {
        out.push_str(&format!("  {:width$}  {} [default: {}]\n", s.name, s.meaning, s.default));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variable `config.rs` reads is listed: a new setting cannot miss `--help`.
    #[test]
    fn every_variable_the_config_reads_is_listed() {
        let source = include_str!("../config.rs");
        let mut read = Vec::new();
        for piece in source.split('"').skip(1).step_by(2) {
            let looks_like_a_variable = piece.len() > 3
                && piece.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                && (piece.starts_with("MAILROOM_")
                    || piece.starts_with("RESEND_")
                    || ["DATABASE_URL", "PUBLIC_URL", "WEBHOOK_SECRET", "DEBUG"].contains(&piece));
            if looks_like_a_variable {
                read.push(piece);
            }
        }
        assert!(read.len() > 40, "the scan found the variables: {read:?}");
        for name in read {
            assert!(SETTINGS.iter().any(|s| s.name == name), "{name} is read by config.rs but not listed in SETTINGS");
        }
    }
}
