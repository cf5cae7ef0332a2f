//! The in-process provider: no account, no network. Domains verify when asked;
//! mail is accepted and answered with the delivery events Resend would send,
//! following Resend's test addresses, through the same pipeline as real webhooks.

use std::collections::HashSet;
use std::sync::Mutex;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::mpsc;

use super::{BatchAnswer, DeliveryProvider, DomainInfo, OutgoingEmail, ProviderError, ProviderResult};

/// A generated webhook: the svix-id it would carry and its JSON body.
#[derive(Clone, Debug)]
pub struct GeneratedEvent {
    pub svix_id: String,
    pub body: String,
}

pub struct SimulatedProvider {
    verified: Mutex<HashSet<String>>,
    events: mpsc::UnboundedSender<GeneratedEvent>,
    /// Told of every event sent, so the feed that stores them need not poll.
    arrived: std::sync::Arc<tokio::sync::Notify>,
}

impl SimulatedProvider {
    pub fn new(events: mpsc::UnboundedSender<GeneratedEvent>, arrived: std::sync::Arc<tokio::sync::Notify>) -> Self {
        Self { verified: Mutex::new(HashSet::new()), events, arrived }
    }

    fn accept(&self, email: &OutgoingEmail) -> ProviderResult<String> {
        if email.to.is_empty() || email.to.len() > 50 {
            return Err(ProviderError::permanent("validation_error", "`to` must hold 1 to 50 addresses"));
        }
        let id = uuid::Uuid::new_v4().to_string();
        for event in delivery_events(&id, email) {
            // The receiver lives as long as the app; after shutdown events have nowhere to go.
            let _ = self.events.send(event);
        }
        self.arrived.notify_one();
        Ok(id)
    }
}

/// What Resend's test address `to` leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestOutcome {
    Delivered,
    Bounced,
    Complained,
    Suppressed,
}

/// Resend's test addresses: `delivered@`, `bounced@`, `complained@` (each with
/// optional `+label`) and `suppressed@resend.dev`; anything else is delivered.
pub fn test_outcome(to: &str) -> TestOutcome {
    let lower = to.to_ascii_lowercase();
    let Some((local, domain)) = lower.rsplit_once('@') else { return TestOutcome::Delivered };
    if domain != "resend.dev" {
        return TestOutcome::Delivered;
    }
    let base = local.split('+').next().unwrap_or(local);
    match (base, local.contains('+')) {
        ("bounced", _) => TestOutcome::Bounced,
        ("complained", _) => TestOutcome::Complained,
        ("suppressed", false) => TestOutcome::Suppressed,
        _ => TestOutcome::Delivered,
    }
}

/// The webhook events Resend would send for an accepted email, in order.
pub fn delivery_events(email_id: &str, email: &OutgoingEmail) -> Vec<GeneratedEvent> {
    let to = email.to.first().map(String::as_str).unwrap_or_default();
    let types: &[&str] = match test_outcome(to) {
        TestOutcome::Delivered => &["email.sent", "email.delivered"],
        TestOutcome::Bounced => &["email.sent", "email.bounced"],
        TestOutcome::Complained => &["email.sent", "email.delivered", "email.complained"],
        TestOutcome::Suppressed => &["email.suppressed"],
    };
    let now = crate::domain::rfc3339(crate::domain::now_ms());
    let tags: serde_json::Map<String, serde_json::Value> =
        email.tags.iter().map(|t| (t.name.clone(), serde_json::Value::String(t.value.clone()))).collect();
    types
        .iter()
        .map(|kind| {
            let mut data = serde_json::json!({
                "email_id": email_id,
                "created_at": now,
                "from": email.from,
                "to": email.to,
                "subject": email.subject,
                "tags": tags,
            });
            if *kind == "email.bounced" {
                data["bounce"] = serde_json::json!({
                    "message": "The recipient's email address does not exist.",
                    "type": "Permanent",
                    "subType": "General",
                });
            }
            GeneratedEvent {
                svix_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
                body: serde_json::json!({ "type": kind, "created_at": now, "data": data }).to_string(),
            }
        })
        .collect()
}

/// DNS records in the shape Resend returns them, for a domain that sends through it.
pub fn dns_records(domain: &str) -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({"record": "SPF", "name": format!("send.{domain}"), "type": "MX", "ttl": "Auto", "status": "not_started", "value": "feedback-smtp.us-east-1.amazonses.com", "priority": 10}),
        serde_json::json!({"record": "SPF", "name": format!("send.{domain}"), "type": "TXT", "ttl": "Auto", "status": "not_started", "value": "v=spf1 include:amazonses.com ~all"}),
        serde_json::json!({"record": "DKIM", "name": format!("resend._domainkey.{domain}"), "type": "TXT", "ttl": "Auto", "status": "not_started", "value": "p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDsandbox"}),
    ]
}

impl DeliveryProvider for SimulatedProvider {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn create_domain<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<DomainInfo>> {
        async move {
            Ok(DomainInfo {
                id: format!("sandbox-{}", uuid::Uuid::new_v4()),
                name: name.to_owned(),
                status: "not_started".into(),
                records: dns_records(name),
            })
        }
        .boxed()
    }

    fn verify_domain<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<()>> {
        async move {
            self.verified
                .lock()
                .map_err(|_| ProviderError::permanent("internal", "lock poisoned"))?
                .insert(id.to_owned());
            Ok(())
        }
        .boxed()
    }

    fn get_domain<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<DomainInfo>> {
        async move {
            let verified =
                self.verified.lock().map_err(|_| ProviderError::permanent("internal", "lock poisoned"))?.contains(id);
            let status = if verified { "verified" } else { "not_started" };
            Ok(DomainInfo { id: id.to_owned(), name: String::new(), status: status.into(), records: Vec::new() })
        }
        .boxed()
    }

    fn send_email<'a>(&'a self, _key: &'a str, body: &'a str) -> BoxFuture<'a, ProviderResult<String>> {
        async move {
            let email: OutgoingEmail =
                serde_json::from_str(body).map_err(|e| ProviderError::permanent("validation_error", e.to_string()))?;
            self.accept(&email)
        }
        .boxed()
    }

    fn send_batch<'a>(&'a self, _key: &'a str, body: &'a str) -> BoxFuture<'a, ProviderResult<BatchAnswer>> {
        async move {
            let emails: Vec<OutgoingEmail> =
                serde_json::from_str(body).map_err(|e| ProviderError::permanent("validation_error", e.to_string()))?;
            if emails.is_empty() || emails.len() > 100 {
                return Err(ProviderError::permanent("validation_error", "a batch holds 1 to 100 emails"));
            }
            // Permissive validation, as mailroom asks of Resend: each email on its own.
            let mut answer = BatchAnswer::default();
            for (index, email) in emails.iter().enumerate() {
                match self.accept(email) {
                    Ok(id) => answer.ids.push(id),
                    Err(e) => answer.rejected.push((index, e.message)),
                }
            }
            Ok(answer)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resend_test_addresses_lead_to_their_outcomes() {
        assert_eq!(test_outcome("delivered@resend.dev"), TestOutcome::Delivered);
        assert_eq!(test_outcome("bounced@resend.dev"), TestOutcome::Bounced);
        assert_eq!(test_outcome("bounced+x1@resend.dev"), TestOutcome::Bounced);
        assert_eq!(test_outcome("complained+a@resend.dev"), TestOutcome::Complained);
        assert_eq!(test_outcome("suppressed@resend.dev"), TestOutcome::Suppressed);
        assert_eq!(test_outcome("bounced@example.org"), TestOutcome::Delivered);
    }
}
