//! Domain newtypes. Raw strings stop at the HTTP edge: everything past it holds
//! one of these, so an invalid address or domain cannot reach the store.

pub mod attributes;
pub mod automation;
mod claimed_message;
mod client_address;
mod clock;
pub mod consent;
pub mod delivery_event;
mod email;
pub mod fair_share;
pub mod filter;
mod keys;
pub mod locale;
mod name;
pub mod outbox_policy;
pub mod render_failures;
pub mod reputation;
pub mod sender;
pub mod signup;
pub mod starters;
mod status;
mod targeting;
mod tenant_event;
mod text;
pub mod topic;
pub mod webhook_shares;

pub use attributes::Attributes;
pub use claimed_message::{ClaimedMessage, RenderClaimed};
pub use client_address::{throttle_bucket, IpRange, TrustedProxies};
pub use clock::Clock;
pub use consent::{ConsentChange, ConsentClient, ConsentOrigin, ConsentSource};
pub use email::EmailAddress;
pub use filter::{FilterError, SegmentFilter};
pub use keys::{address_hash, erased_address, generate_key, hash_key, is_erased_address};
pub use locale::Locale;
pub use name::{DomainName, Tag};
pub use reputation::{ReputationCounts, ReputationPolicy, ReputationState};
pub use status::{CampaignStatus, MessageStatus};
pub use targeting::Targeting;
pub use tenant_event::{is_tenant_event_type, TENANT_EVENT_TYPES, TEST_EVENT_TYPE};
pub use text::{
    check_single_line, is_header_unsafe, link_without_secrets, nul_path, redact_addresses, strip_header_unsafe,
};
pub use topic::{TopicChoice, TopicDefault, TopicDescription, TopicName, TopicState};

/// Milliseconds since the Unix epoch: the one timestamp representation stored
/// on both backends (sqlx `Any` carries integers, not timestamps).
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// Formats epoch milliseconds as RFC 3339 for API responses.
pub fn rfc3339(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Why a time is not read: not RFC 3339, or beyond what epoch milliseconds hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeError {
    NotRfc3339,
    OutOfRange,
}

/// An RFC 3339 time (`2026-01-31T09:00:00Z`) as epoch milliseconds: the one
/// parser of times read from requests and webhooks.
pub fn parse_rfc3339(s: &str) -> Result<i64, TimeError> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| TimeError::NotRfc3339)?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| TimeError::OutOfRange)
}

/// A new time-ordered identifier (UUID v7), so ids sort by creation and work as cursors.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Accepts only canonical UUIDs as ids; anything else cannot name a row.
pub fn parse_id(raw: &str) -> Option<String> {
    uuid::Uuid::parse_str(raw).ok().map(|u| u.to_string())
}

/// A tenant's id (the API's `customer_id`). The store takes tenant-scoped
/// queries only through this type, so a bare string — another row's id, a
/// value from a request body — cannot be passed where a tenant is meant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, sqlx::Type)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// From a path segment: only a canonical UUID names a tenant.
    pub fn parse(raw: &str) -> Option<Self> {
        parse_id(raw).map(Self)
    }

    /// From a row the store read (already a tenant's id).
    pub fn from_stored(id: String) -> Self {
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rfc3339_time_reads_as_epoch_milliseconds_and_formats_back() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Ok(1_500));
        assert_eq!(parse_rfc3339("2026-01-31T10:00:00+01:00"), parse_rfc3339("2026-01-31T09:00:00Z"));
        assert_eq!(parse_rfc3339("yesterday"), Err(TimeError::NotRfc3339));
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.5Z");
    }
}
