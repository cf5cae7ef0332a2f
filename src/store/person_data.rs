//! What an export of a person's data (GDPR art. 15) reads beyond the
//! contact's own rows: the mail sent to the person and the delivery events
//! about it, and its suppression.

use sqlx::FromRow;

use super::erasure::json_list;
use super::Store;
use crate::domain::TenantId;

/// One message to the person, as an export shows it.
#[derive(Clone, Debug, FromRow)]
pub struct ExportMessage {
    pub id: String,
    pub campaign_id: Option<String>,
    pub to_email: String,
    pub subject: Option<String>,
    pub status: String,
    pub provider_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One delivery event about one of the person's messages.
#[derive(Clone, Debug, FromRow)]
pub struct ExportEvent {
    pub id: String,
    pub event_type: String,
    pub message_id: Option<String>,
    pub occurred_at: Option<i64>,
    pub received_at: i64,
    pub bounce_type: Option<String>,
    pub link: Option<String>,
}

impl Store {
    /// The person's messages at the tenant (by contact, or by address for
    /// transactional mail), oldest first, with the campaign's subject when
    /// the message has none of its own.
    pub async fn person_messages(
        &self,
        tenant_id: &TenantId,
        contact_id: &str,
        email_normalized: &str,
    ) -> Result<Vec<ExportMessage>, sqlx::Error> {
        sqlx::query_as(
            "SELECT m.id, m.campaign_id, m.to_email, COALESCE(m.subject, c.subject) AS subject, m.status, \
               m.provider_id, m.created_at, m.updated_at \
             FROM messages m LEFT JOIN campaigns c ON c.id = m.campaign_id \
             WHERE m.tenant_id = $1 AND (m.contact_id = $2 OR (m.campaign_id IS NULL AND lower(m.to_email) = $3)) \
             ORDER BY m.created_at, m.id",
        )
        .bind(tenant_id)
        .bind(contact_id)
        .bind(email_normalized)
        .fetch_all(&self.pool)
        .await
    }

    /// The delivery events about these messages of the tenant, oldest first.
    pub async fn person_events(
        &self,
        tenant_id: &TenantId,
        message_ids: &[String],
    ) -> Result<Vec<ExportEvent>, sqlx::Error> {
        let mut events = Vec::new();
        // A page of messages at a time keeps each statement's list bounded.
        for ids in message_ids.chunks(500) {
            let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
            let page: Vec<ExportEvent> = sqlx::query_as(&format!(
                "SELECT svix_id AS id, event_type, message_id, occurred_at, received_at, bounce_type, link \
                 FROM webhook_events WHERE tenant_id = $1 AND message_id IN ({})",
                json_list(self.backend, "$2")
            ))
            .bind(tenant_id)
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
            events.extend(page);
        }
        events.sort_by(|a, b| (a.occurred_at, &a.id).cmp(&(b.occurred_at, &b.id)));
        Ok(events)
    }

    /// Why the address (normalized) is on the tenant's suppression list, if it is.
    pub async fn suppression_reason(
        &self,
        tenant_id: &TenantId,
        email_normalized: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT reason FROM suppressions WHERE tenant_id = $1 AND email_normalized = $2")
            .bind(tenant_id)
            .bind(email_normalized)
            .fetch_optional(&self.pool)
            .await
    }
}
