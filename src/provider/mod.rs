//! The one way out to the delivery provider. `DeliveryProvider` has the few
//! operations mailroom needs; `resend` speaks Resend's REST API, `sandbox`
//! accepts everything in-process and reports delivery events like Resend would.

pub mod resend;
pub mod simulated;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// One email in Resend's request shape. The worker serialises these once, stores
/// the bytes with the batch, and every attempt sends exactly those bytes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OutgoingEmail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub html: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Extra headers: `List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 8058).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<EmailTag>,
}

/// Resend tags are `{name, value}` of ASCII letters, digits, `_` and `-`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EmailTag {
    pub name: String,
    pub value: String,
}

impl EmailTag {
    pub fn new(name: &str, value: &str) -> Self {
        let clean = |s: &str| {
            s.chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
                .take(256)
                .collect()
        };
        Self { name: clean(name), value: clean(value) }
    }
}

/// A domain as the provider reports it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DomainInfo {
    pub id: String,
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub records: Vec<serde_json::Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Timeouts, connection errors, 5xx, `concurrent_idempotent_requests`: try again later.
    Retryable,
    /// 429: wait `retry_after_ms` and try again; not the request's fault.
    RateLimited { retry_after_ms: u64 },
    /// `daily_quota_exceeded` / `monthly_quota_exceeded`: nothing can be sent
    /// until the quota window resets; sending pauses rather than retry-looping.
    QuotaExceeded { retry_after_ms: u64 },
    /// 401/403 for the key itself (missing, invalid, revoked): every request
    /// would fail the same way, so the queue pauses and an operator is alerted
    /// instead of every message becoming a dead letter.
    KeyRejected,
    /// 413: the request body is over the provider's limit; a batch is split.
    TooLarge,
    /// Validation, unverified domain, changed idempotent body: retrying cannot help.
    Permanent,
}

#[derive(Clone, Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ProviderError {
    pub class: ErrorClass,
    pub status: Option<u16>,
    /// Resend's error `name`, e.g. `validation_error`, or `network_error` for transport failures.
    pub name: String,
    pub message: String,
}

impl ProviderError {
    pub fn permanent(name: &str, message: impl Into<String>) -> Self {
        Self { class: ErrorClass::Permanent, status: None, name: name.into(), message: message.into() }
    }

    /// Classifies an HTTP error answer from the provider (DESIGN.md, "Providers").
    pub fn from_response(status: u16, name: String, message: String, retry_after_ms: Option<u64>) -> Self {
        let class = match (status, name.as_str()) {
            (429, "daily_quota_exceeded") => {
                ErrorClass::QuotaExceeded { retry_after_ms: retry_after_ms.unwrap_or_else(until_next_utc_day_ms) }
            }
            // Re-checked daily: the monthly reset date depends on the plan.
            (429, "monthly_quota_exceeded") => {
                ErrorClass::QuotaExceeded { retry_after_ms: retry_after_ms.unwrap_or_else(until_next_utc_day_ms) }
            }
            (401, _) | (403, "invalid_api_key" | "missing_api_key" | "restricted_api_key") => ErrorClass::KeyRejected,
            (413, _) => ErrorClass::TooLarge,
            (429, _) => ErrorClass::RateLimited { retry_after_ms: retry_after_ms.unwrap_or(1_000) },
            (409, "concurrent_idempotent_requests") => ErrorClass::Retryable,
            (408, _) | (500..=599, _) => ErrorClass::Retryable,
            _ => ErrorClass::Permanent,
        };
        Self { class, status: Some(status), name, message }
    }
}

/// Milliseconds until the next midnight UTC, when a daily quota resets.
fn until_next_utc_day_ms() -> u64 {
    let day = 86_400_000;
    u64::try_from(day - crate::domain::now_ms().rem_euclid(day)).unwrap_or(3_600_000)
}

pub type ProviderResult<T> = Result<T, ProviderError>;

/// The answer to a batch request. With permissive validation the provider sends
/// the valid emails and lists the others; `ids` holds the accepted emails' ids
/// in request order, `rejected` the index and reason of each refused one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchAnswer {
    pub ids: Vec<String>,
    pub rejected: Vec<(usize, String)>,
}

pub trait DeliveryProvider: Send + Sync {
    /// `"resend"` or `"sandbox"`.
    fn name(&self) -> &'static str;
    /// If the provider's rate-limit headers said the budget is spent, until when
    /// (epoch ms). Reading it clears it.
    fn exhausted_until_ms(&self) -> Option<i64> {
        None
    }
    /// The account's request rate as the provider last stated it (`ratelimit-limit`).
    fn account_rate_limit(&self) -> Option<u32> {
        None
    }
    fn create_domain<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<DomainInfo>>;
    /// Asks the provider to (re)check the DNS records; verification completes asynchronously.
    fn verify_domain<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<()>>;
    fn get_domain<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<DomainInfo>>;
    /// Sends one email (`body` is a serialised [`OutgoingEmail`]); returns the provider id.
    fn send_email<'a>(&'a self, idempotency_key: &'a str, body: &'a str) -> BoxFuture<'a, ProviderResult<String>>;
    /// Sends up to 100 emails (`body` is a serialised array), validating each on
    /// its own (Resend's `x-batch-validation: permissive`): invalid emails are
    /// refused alone rather than failing the whole request.
    fn send_batch<'a>(&'a self, idempotency_key: &'a str, body: &'a str) -> BoxFuture<'a, ProviderResult<BatchAnswer>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_as_design_md_lists_them() {
        let class = |status, name: &str| ProviderError::from_response(status, name.into(), String::new(), None).class;
        assert_eq!(class(500, "internal_server_error"), ErrorClass::Retryable);
        assert_eq!(class(503, "x"), ErrorClass::Retryable);
        assert_eq!(class(409, "concurrent_idempotent_requests"), ErrorClass::Retryable);
        assert_eq!(class(409, "invalid_idempotent_request"), ErrorClass::Permanent);
        assert_eq!(class(422, "validation_error"), ErrorClass::Permanent);
        assert_eq!(class(403, "validation_error"), ErrorClass::Permanent);
        assert_eq!(class(429, "rate_limit_exceeded"), ErrorClass::RateLimited { retry_after_ms: 1_000 });
        assert!(matches!(class(429, "daily_quota_exceeded"), ErrorClass::QuotaExceeded { .. }));
        assert!(matches!(class(429, "monthly_quota_exceeded"), ErrorClass::QuotaExceeded { .. }));
        assert_eq!(class(401, "missing_api_key"), ErrorClass::KeyRejected);
        assert_eq!(class(403, "invalid_api_key"), ErrorClass::KeyRejected);
        assert_eq!(class(413, "request_too_large"), ErrorClass::TooLarge);
    }

    #[test]
    fn tags_keep_to_resends_alphabet() {
        let t = EmailTag::new("tenant", "0193a6f0-7b1c.x@y");
        assert_eq!(t.value, "0193a6f0-7b1c_x_y");
    }
}
