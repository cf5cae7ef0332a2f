//! Delivery events: Svix signature verification, parsing of Resend's webhook
//! bodies, and applying them (once, forward only) through the store.

mod verify;
mod writer;

pub use verify::{VerifyError, WebhookVerifier};
pub use writer::EventWriter;

use serde_json::Value;
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};

use crate::domain::delivery_event::{DomainChange, EventOutcome, IncomingEvent};
use crate::domain::MessageStatus;
use crate::provider::simulated::GeneratedEvent;

/// Parses a Resend webhook body leniently: real payloads carry more fields than
/// documented, and Resend's own SDK types reject some real ones.
pub fn parse_event(svix_id: &str, body: &[u8]) -> Result<IncomingEvent, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    // No event has a use for a NUL, and PostgreSQL cannot store one.
    if let Some(path) = crate::domain::nul_path(&v) {
        return Err(format!("`{path}` contains a NUL character"));
    }
    let event_type = v.get("type").and_then(Value::as_str).ok_or("the event has no `type`")?.to_owned();
    let data = v.get("data").cloned().unwrap_or(Value::Null);
    let provider_email_id = data.get("email_id").and_then(Value::as_str).map(str::to_owned);
    let message_tag = tag_value(&data, "message");
    let occurred_at = v.get("created_at").and_then(Value::as_str).and_then(parse_time).filter(|t| *t >= 0);
    let bounce_type = data.pointer("/bounce/type").and_then(Value::as_str).map(canonical_bounce_type);
    let link = match event_type.as_str() {
        "email.clicked" => data.pointer("/click/link").and_then(Value::as_str).map(|l| cap_bytes(l, MAX_LINK_BYTES)),
        _ => None,
    };
    let domain = match event_type.as_str() {
        "domain.created" | "domain.updated" | "domain.deleted" => {
            data.get("id").and_then(Value::as_str).filter(|id| !id.is_empty()).map(|id| DomainChange {
                resend_domain_id: id.to_owned(),
                // A deleted domain sends nothing, whatever its last status said.
                status: match (event_type.as_str(), data.get("status").and_then(Value::as_str)) {
                    ("domain.deleted", _) => "deleted".to_owned(),
                    (_, Some(s)) if !s.is_empty() => cap_bytes(s, 64),
                    _ => "unknown".to_owned(),
                },
            })
        }
        _ => None,
    };
    let (new_status, suppress) = match event_type.as_str() {
        "email.sent" => (Some(MessageStatus::Sent), None),
        "email.delivered" => (Some(MessageStatus::Delivered), None),
        "email.opened" => (Some(MessageStatus::Opened), None),
        "email.clicked" => (Some(MessageStatus::Clicked), None),
        "email.failed" => (Some(MessageStatus::Failed), None),
        "email.suppressed" => (Some(MessageStatus::Suppressed), None),
        "email.complained" => (Some(MessageStatus::Complained), Some("complained")),
        // Only a permanent bounce says the address is gone; transient ones
        // (mailbox full) and undetermined ones are recorded and nothing more.
        "email.bounced" => match data.pointer("/bounce/type").and_then(Value::as_str) {
            Some(t) if t.eq_ignore_ascii_case("permanent") => (Some(MessageStatus::Bounced), Some("bounced")),
            _ => (None, None),
        },
        _ => (None, None),
    };
    Ok(IncomingEvent {
        svix_id: svix_id.to_owned(),
        event_type,
        provider_email_id,
        message_tag,
        new_status,
        suppress,
        payload: String::from_utf8_lossy(body).into_owned(),
        occurred_at,
        link,
        bounce_type,
        domain,
    })
}

/// Longest click link kept (the counters key on it).
const MAX_LINK_BYTES: usize = 1000;

/// `s`, cut to at most `max` bytes at a character boundary.
fn cap_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// `Permanent`, `Transient` or `Undetermined` whatever the case; anything else as sent (capped).
fn canonical_bounce_type(t: &str) -> String {
    ["Permanent", "Transient", "Undetermined"]
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(t))
        .map_or_else(|| cap_bytes(t, 64), str::to_owned)
}

/// An RFC 3339 time as epoch milliseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    crate::domain::parse_rfc3339(s).ok()
}

/// `data.tags` is an object map in webhooks; accept the `[{name, value}]` form too.
fn tag_value(data: &Value, name: &str) -> Option<String> {
    match data.get("tags")? {
        Value::Object(map) => map.get(name).and_then(Value::as_str).map(str::to_owned),
        Value::Array(items) => items
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|t| t.get("value").and_then(Value::as_str))
            .map(str::to_owned),
        _ => None,
    }
}

pub const KNOWN_TYPES: [&str; 13] = [
    "email.sent",
    "email.delivered",
    "email.delivery_delayed",
    "email.bounced",
    "email.complained",
    "email.opened",
    "email.clicked",
    "email.failed",
    "email.scheduled",
    "email.suppressed",
    "domain.created",
    "domain.updated",
    "domain.deleted",
];

/// Parses and applies one event through the group-commit writer. Errors from
/// the store propagate so the HTTP layer answers 5xx and the provider retries.
/// Returns the event's type with what became of it.
pub async fn ingest(writer: &EventWriter, svix_id: &str, body: &[u8]) -> Result<(String, EventOutcome), IngestError> {
    let event = parse_event(svix_id, body).map_err(IngestError::Invalid)?;
    let kind = event.event_type.clone();
    let outcome = writer.write(event).await.map_err(IngestError::Store)?;
    record(&kind, &outcome, svix_id);
    Ok((kind, outcome))
}

fn record(event_type: &str, outcome: &EventOutcome, svix_id: &str) {
    let result = match outcome {
        EventOutcome::Duplicate => "duplicate",
        EventOutcome::Applied { message_found: true } => "applied",
        EventOutcome::Applied { message_found: false } => "unknown_email",
    };
    // Label only the types Resend documents, so unexpected input cannot grow the series.
    let kind = if KNOWN_TYPES.contains(&event_type) { event_type.to_owned() } else { "other".into() };
    metrics::counter!("mailroom_webhook_events_total", "type" => kind, "result" => result).increment(1);
    tracing::debug!(svix_id, event_type, ?outcome, "delivery event");
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid event: {0}")]
    Invalid(String),
    #[error("could not store the event: {0}")]
    Store(String),
}

/// Feeds the sandbox provider's generated events into the same pipeline as
/// real webhooks, one at a time, as they come (the provider notifies `arrived`).
/// Keeps going while the other workers finish at shutdown: their last batches
/// still produce events.
pub struct SimulatedFeed {
    writer: EventWriter,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<GeneratedEvent>>,
    arrived: Arc<Notify>,
}

impl SimulatedFeed {
    pub fn new(writer: EventWriter, events: mpsc::UnboundedReceiver<GeneratedEvent>, arrived: Arc<Notify>) -> Self {
        Self { writer, events: tokio::sync::Mutex::new(events), arrived }
    }

    /// Stores the next generated event, if there is one.
    /// The receiver stays locked until the event is stored, so that two
    /// steppers (the runner and a test's `settle`) store events in the order
    /// they were generated.
    async fn feed_one(&self) -> bool {
        let mut events = self.events.lock().await;
        let Ok(event) = events.try_recv() else { return false };
        // Retry store failures briefly, as Resend would retry a 5xx.
        for attempt in 0..5u64 {
            match ingest(&self.writer, &event.svix_id, event.body.as_bytes()).await {
                Ok(_) | Err(IngestError::Invalid(_)) => break,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "sandbox event not stored yet");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
        true
    }
}

impl crate::workers::Worker for SimulatedFeed {
    fn name(&self) -> &'static str {
        "sandbox_events"
    }

    fn step(&self) -> futures::future::BoxFuture<'_, anyhow::Result<crate::workers::Step>> {
        Box::pin(async move {
            Ok(if self.feed_one().await { crate::workers::Step::Worked } else { crate::workers::Step::Idle })
        })
    }

    fn cadence(&self) -> crate::workers::Cadence {
        // The provider notifies every event (a stored permit: none is missed), so the pause rarely ends by itself.
        crate::workers::Cadence::Queue {
            idle: std::time::Duration::from_secs(1),
            after_error: std::time::Duration::from_secs(1),
            wake: Some(self.arrived.clone()),
        }
    }

    fn stop(&self) -> crate::workers::Stop {
        crate::workers::Stop::Last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let all: Value = serde_json::from_str(include_str!("../../tests/fixtures/resend-webhook-events.json")).unwrap();
        serde_json::to_vec(&all[name]).unwrap()
    }

    #[test]
    fn every_fixture_event_parses() {
        let all: Value = serde_json::from_str(include_str!("../../tests/fixtures/resend-webhook-events.json")).unwrap();
        for (name, body) in all.as_object().unwrap() {
            if name.starts_with('_') {
                continue;
            }
            let e = parse_event("msg_1", &serde_json::to_vec(body).unwrap()).unwrap();
            assert!(e.event_type.contains('.'), "{name}");
        }
    }

    #[test]
    fn only_a_permanent_bounce_suppresses() {
        let hard = parse_event("a", &fixture("email.bounced")).unwrap();
        assert_eq!((hard.new_status, hard.suppress), (Some(MessageStatus::Bounced), Some("bounced")));
        let soft = parse_event("b", &fixture("email.bounced (transient)")).unwrap();
        assert_eq!((soft.new_status, soft.suppress), (None, None));
    }

    #[test]
    fn a_complaint_suppresses_and_tags_are_read_from_the_object_map() {
        let e = parse_event("c", &fixture("email.complained")).unwrap();
        assert_eq!(e.suppress, Some("complained"));
        let sent = parse_event("d", &fixture("email.sent")).unwrap();
        assert_eq!(sent.provider_email_id.as_deref(), Some("4ef9a417-02e9-4d39-ad75-9611e0fcc33c"));
    }

    #[test]
    fn garbage_is_rejected_not_panicked_on() {
        assert!(parse_event("x", b"not json").is_err());
        assert!(parse_event("x", b"{}").is_err());
        assert!(parse_event("x", b"[1,2]").is_err());
    }
}
