//! A person's data on request (GDPR articles 15 and 17, issue 23 section 4):
//! the export of everything mailroom holds about a contact at one tenant, as
//! one document, and its erasure. Both front ends call these.

use serde::Serialize;
use utoipa::ToSchema;

use super::consent::ConsentRecord;
use super::contacts::Contact;
use super::topics::ContactTopic;
use super::{parse_id, Error, Result};
use crate::domain::{rfc3339, ConsentOrigin, EmailAddress, TenantId};
use crate::state::AppState;
use crate::store::{ErasedCounts, ExportEvent, ExportMessage};

/// One message to the person.
#[derive(Serialize, ToSchema)]
pub struct ExportedMessage {
    pub id: String,
    /// `null` for a transactional email.
    pub campaign_id: Option<String>,
    pub to: String,
    pub subject: Option<String>,
    /// queued, paused, sending, dead, cancelled, sent, delivered, opened,
    /// clicked, suppressed, failed, bounced or complained.
    pub status: String,
    /// The delivery provider's id for the email (Resend's), once sent.
    pub provider_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<ExportMessage> for ExportedMessage {
    fn from(m: ExportMessage) -> Self {
        Self {
            id: m.id,
            campaign_id: m.campaign_id,
            to: m.to_email,
            subject: m.subject,
            status: m.status,
            provider_id: m.provider_id,
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
        }
    }
}

/// One delivery event (from Resend) about one of the person's messages.
#[derive(Serialize, ToSchema)]
pub struct ExportedEvent {
    pub id: String,
    /// `email.delivered`, `email.opened`, `email.bounced`...
    #[serde(rename = "type")]
    pub event_type: String,
    pub message_id: Option<String>,
    /// When it happened, as the event says (else when it was received).
    pub occurred_at: String,
    pub bounce_type: Option<String>,
    /// The link clicked, for `email.clicked`.
    pub link: Option<String>,
}

impl From<ExportEvent> for ExportedEvent {
    fn from(e: ExportEvent) -> Self {
        Self {
            id: e.id,
            event_type: e.event_type,
            message_id: e.message_id,
            occurred_at: rfc3339(e.occurred_at.unwrap_or(e.received_at)),
            bounce_type: e.bounce_type,
            link: e.link,
        }
    }
}

/// Everything mailroom holds about one person at one customer (GDPR art. 15).
#[derive(Serialize, ToSchema)]
pub struct PersonExport {
    /// When this document was made.
    pub exported_at: String,
    pub contact: Contact,
    /// Whether the address is on the customer's suppression list, and why.
    pub suppression: Option<String>,
    /// Every topic of the customer's, with where the person stands on it.
    pub topics: Vec<ContactTopic>,
    /// The person's consent history, oldest first.
    pub consent_records: Vec<ConsentRecord>,
    /// Mail to the person (campaigns, transactional), oldest first.
    pub messages: Vec<ExportedMessage>,
    /// Delivery events about those messages, oldest first.
    pub events: Vec<ExportedEvent>,
}

/// What an erasure removed (GDPR art. 17): row counts per kind.
#[derive(Serialize, ToSchema)]
pub struct Erasure {
    /// The contact erased (its row is gone; its id stays in the consent records).
    pub contact_id: String,
    pub erased: bool,
    pub counts: ErasureCounts,
}

#[derive(Serialize, ToSchema)]
pub struct ErasureCounts {
    /// Messages whose address now reads as a keyed hash.
    pub messages: u64,
    /// Of those, mail not sent yet, cancelled.
    pub messages_cancelled: u64,
    /// Stored delivery events whose payload named the address.
    pub delivery_events: u64,
    /// Stored deliveries to the customer's webhook endpoints that named the address.
    pub webhook_deliveries: u64,
    /// Stored answers of idempotent requests that named the address.
    pub idempotent_answers: u64,
    pub automation_runs: u64,
    pub automation_sends: u64,
    /// Suppression entries holding the address in clear (a keyed hash replaces them).
    pub suppressions: u64,
    /// Client details (IP, user agent) kept beside the consent records, deleted.
    pub consent_clients: u64,
    /// Link figures and import reports that named the address.
    pub figures_and_reports: u64,
}

impl From<ErasedCounts> for ErasureCounts {
    fn from(c: ErasedCounts) -> Self {
        Self {
            messages: c.messages,
            messages_cancelled: c.messages_cancelled,
            delivery_events: c.delivery_events,
            webhook_deliveries: c.webhook_deliveries,
            idempotent_answers: c.idempotent_answers,
            automation_runs: c.automation_runs,
            automation_sends: c.automation_sends,
            suppressions: c.suppressions,
            consent_clients: c.consent_clients,
            figures_and_reports: c.figures_and_reports,
        }
    }
}

/// Consent records read per page while exporting.
const CONSENT_PAGE: i64 = 1000;

/// The export of one contact of the tenant; 404 when it has no such contact.
pub async fn export(state: &AppState, tenant_id: &TenantId, raw_contact: &str) -> Result<PersonExport> {
    let contact_id = parse_id(raw_contact, "contact")?;
    let store = &state.store;
    let row = store.contact(tenant_id, &contact_id).await?.ok_or(Error::NotFound("contact"))?;
    let normalized = EmailAddress::parse(&row.email).map_or_else(|_| row.email.to_lowercase(), |e| e.normalized());
    let suppression = store.suppression_reason(tenant_id, &normalized).await?;
    let topics = store.contact_topics(tenant_id, &contact_id).await?.unwrap_or_default();
    let mut records = Vec::new();
    let mut cursor: Option<(i64, String)> = None;
    loop {
        let page = store
            .consent_records(tenant_id, &contact_id, cursor.as_ref().map(|(at, id)| (*at, id.as_str())), CONSENT_PAGE)
            .await?;
        let more = page.len() as i64 > CONSENT_PAGE;
        let mut page = page;
        page.truncate(CONSENT_PAGE as usize);
        cursor = page.last().map(|r| (r.at, r.id.clone()));
        records.extend(page);
        if !more {
            break;
        }
    }
    records.reverse();
    let messages = store.person_messages(tenant_id, &contact_id, &normalized).await?;
    let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    let events = store.person_events(tenant_id, &ids).await?;
    Ok(PersonExport {
        exported_at: rfc3339(store.now_ms()),
        contact: Contact::from(row),
        suppression,
        topics: topics.into_iter().map(ContactTopic::from).collect(),
        consent_records: records.into_iter().map(ConsentRecord::from).collect(),
        messages: messages.into_iter().map(ExportedMessage::from).collect(),
        events: events.into_iter().map(ExportedEvent::from).collect(),
    })
}

/// Erases one contact of the tenant (see [`crate::store::Store::erase_contact`]);
/// 404 when it has no such contact, which includes a contact erased before.
pub async fn erase(
    state: &AppState,
    tenant_id: &TenantId,
    raw_contact: &str,
    origin: &ConsentOrigin,
) -> Result<Erasure> {
    let contact_id = parse_id(raw_contact, "contact")?;
    let counts = state.store.erase_contact(tenant_id, &contact_id, origin).await?.ok_or(Error::NotFound("contact"))?;
    tracing::info!(tenant = %tenant_id, contact = %contact_id, "contact erased");
    Ok(Erasure { contact_id, erased: true, counts: counts.into() })
}
