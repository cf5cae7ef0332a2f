//! Consent records: appended with each change of a contact's consent, in the
//! change's own transaction, and never updated (issue 23). The client details
//! of a record (IP, user agent) sit beside it in `consent_clients`, so that
//! erasure can delete them while the record stays.

use sqlx::{AnyConnection, FromRow};

use super::Store;
use crate::domain::{ConsentChange, ConsentOrigin, TenantId};

/// One record as the history shows it, with its topic's name (while the
/// topic exists) and its client details (while they are kept).
#[derive(Clone, Debug, FromRow)]
pub struct ConsentRecordRow {
    pub id: String,
    pub at: i64,
    pub change: String,
    pub topic_id: Option<String>,
    pub topic_name: Option<String>,
    pub source: String,
    pub source_note: Option<String>,
    pub form_id: Option<String>,
    pub campaign_id: Option<String>,
    pub consent_text: Option<String>,
    pub consent_text_version: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// SQL for the ids of records made in bulk: a fresh UUIDv7 prefix bound as
/// `prefix`, then the row's number `n` as 12 hex digits (as
/// `Store::sql_sequential_id`, for a connection in a transaction).
pub(super) fn bulk_id_sql(tx: &AnyConnection, prefix: &str, n: &str) -> String {
    if tx.backend_name().eq_ignore_ascii_case("postgresql") {
        format!("{prefix} || lpad(to_hex(CAST({n} AS BIGINT)), 12, '0')")
    } else {
        format!("{prefix} || printf('%012x', {n})")
    }
}

/// Appends one record about one contact, with its client details when there was a client.
pub(super) async fn record(
    tx: &mut AnyConnection,
    at: i64,
    tenant_id: &str,
    contact_id: &str,
    change: ConsentChange,
    topic_id: Option<&str>,
    origin: &ConsentOrigin,
) -> Result<(), sqlx::Error> {
    let id = crate::domain::new_id();
    sqlx::query(
        "INSERT INTO consent_records (id, tenant_id, contact_id, at, change, topic_id, source, form_id, campaign_id, \
           consent_text, consent_text_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(tenant_id)
    .bind(contact_id)
    .bind(at)
    .bind(change.as_str())
    .bind(topic_id)
    .bind(origin.source.as_str())
    .bind(origin.form_id.as_deref())
    .bind(origin.campaign_id.as_deref())
    .bind(origin.consent_text.as_deref())
    .bind(origin.consent_text_version.as_deref())
    .execute(&mut *tx)
    .await?;
    record_client(tx, &[id], origin).await
}

/// Keeps the client details of these records, when the origin had a client.
pub(super) async fn record_client(
    tx: &mut AnyConnection,
    record_ids: &[String],
    origin: &ConsentOrigin,
) -> Result<(), sqlx::Error> {
    let Some(client) = &origin.client else { return Ok(()) };
    for id in record_ids {
        sqlx::query("INSERT INTO consent_clients (record_id, ip, user_agent) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(client.ip.as_deref())
            .bind(client.user_agent.as_deref())
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

impl Store {
    /// One page of a contact's consent history, newest first, after the
    /// record `after` (its time and id; `None` from the newest). Fetches
    /// `limit + 1`, so the caller knows whether a next page exists.
    pub async fn consent_records(
        &self,
        tenant_id: &TenantId,
        contact_id: &str,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<ConsentRecordRow>, sqlx::Error> {
        let (from, at, id) = match after {
            Some((at, id)) => (1, at, id),
            None => (0, 0, ""),
        };
        sqlx::query_as(
            "SELECT r.id, r.at, r.change, r.topic_id, tp.name AS topic_name, r.source, r.source_note, r.form_id, \
               r.campaign_id, r.consent_text, r.consent_text_version, k.ip, k.user_agent \
             FROM consent_records r LEFT JOIN topics tp ON tp.id = r.topic_id AND tp.tenant_id = r.tenant_id \
               LEFT JOIN consent_clients k ON k.record_id = r.id \
             WHERE r.tenant_id = $1 AND r.contact_id = $2 AND ($3 = 0 OR r.at < $4 OR (r.at = $4 AND r.id < $5)) \
             ORDER BY r.at DESC, r.id DESC LIMIT $6",
        )
        .bind(tenant_id)
        .bind(contact_id)
        .bind(from)
        .bind(at)
        .bind(id)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
    }

    /// The time of one of a contact's records (a page's cursor), if it is one.
    pub async fn consent_record_at(
        &self,
        tenant_id: &TenantId,
        contact_id: &str,
        id: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT at FROM consent_records WHERE tenant_id = $1 AND contact_id = $2 AND id = $3")
            .bind(tenant_id)
            .bind(contact_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Runs migration 0034's backfill statement again (tests: contacts
    /// written without records, as before consent was recorded, e.g. by
    /// [`Store::seed_contacts`]); how many records it wrote.
    pub async fn backfill_consent_records(&self) -> Result<u64, sqlx::Error> {
        let migration = match self.backend {
            super::Backend::Sqlite => include_str!("../../migrations/sqlite/0034_consent_records.sql"),
            super::Backend::Postgres => include_str!("../../migrations/postgres/0034_consent_records.sql"),
        };
        let at = migration.find("INSERT INTO consent_records").unwrap_or(migration.len());
        Ok(sqlx::query(migration[at..].trim().trim_end_matches(';')).execute(&self.pool).await?.rows_affected())
    }
}
