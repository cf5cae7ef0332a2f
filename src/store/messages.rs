//! Messages one by one: lookup, dead letters and their retry, queue depth.

use std::collections::HashMap;

use sqlx::FromRow;

use super::Store;
use crate::domain::TenantId;

#[derive(Clone, Debug, FromRow)]
pub struct MessageRow {
    pub id: String,
    pub tenant_id: String,
    pub campaign_id: Option<String>,
    pub to_email: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub provider_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// 1 when a transactional message asked for unsubscribe headers.
    pub list_unsubscribe: Option<i64>,
    /// 1: a test send's message (counted in no figure).
    pub test: i64,
    /// A transactional message's own subject (campaign mail takes its campaign's).
    pub subject: Option<String>,
}

const MESSAGE_COLUMNS: &str = "id, tenant_id, campaign_id, to_email, status, attempts, last_error, provider_id, \
     created_at, updated_at, list_unsubscribe, test, subject";

impl Store {
    /// One page of a campaign's messages in recipient (contact id) order, the
    /// order of the campaign's unique index; `limit + 1` rows.
    pub async fn campaign_messages(
        &self,
        tenant_id: &TenantId,
        campaign_id: &str,
        after_contact: &str,
        limit: i64,
    ) -> Result<Vec<(String, MessageRow)>, sqlx::Error> {
        #[derive(sqlx::FromRow)]
        struct Row {
            contact_id: String,
            #[sqlx(flatten)]
            message: MessageRow,
        }
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT contact_id, {MESSAGE_COLUMNS} FROM messages WHERE campaign_id = $2 AND tenant_id = $1 \
             AND contact_id > $3 ORDER BY contact_id LIMIT $4"
        ))
        .bind(tenant_id)
        .bind(campaign_id)
        .bind(after_contact)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.contact_id, r.message)).collect())
    }

    /// Dead letters, newest first: of one tenant (or all, for the operator), optionally one campaign.
    pub async fn dead_letters(
        &self,
        tenant_id: Option<&TenantId>,
        campaign_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<MessageRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE status = 'dead' AND ($1 = '' OR tenant_id = $1) \
             AND ($2 = '' OR campaign_id = $2) ORDER BY updated_at DESC, id LIMIT $3"
        ))
        .bind(tenant_id.map_or("", TenantId::as_str))
        .bind(campaign_id.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Per tenant id, its dead letters now (tenants without any are absent):
    /// one grouped read of the same partial index as the dead-letter gauge,
    /// for the operator's tenant list.
    pub async fn dead_letters_per_tenant(&self) -> Result<HashMap<String, i64>, sqlx::Error> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT tenant_id, COUNT(*) FROM messages WHERE status = 'dead' GROUP BY tenant_id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// Queues dead letters again — one message, or every one of a campaign —
    /// with fresh attempts (and, in a new batch, a new idempotency key). A
    /// message of a cancelled or deleted campaign stays dead; one of a paused
    /// campaign waits with it. The update is conditional on `dead`, so two
    /// concurrent retries requeue a message once. Returns how many were queued.
    pub async fn requeue_dead_letters(
        &self,
        tenant_id: &TenantId,
        message_id: Option<&str>,
        campaign_id: Option<&str>,
    ) -> Result<u64, sqlx::Error> {
        let now = self.now_ms();
        let done = sqlx::query(
            "UPDATE messages SET attempts = 0, batch_id = NULL, due_at = $4, updated_at = $4, \
               status = CASE WHEN EXISTS (SELECT 1 FROM campaigns cp WHERE cp.id = messages.campaign_id AND cp.state = 'paused') \
                 THEN 'paused' ELSE 'queued' END \
             WHERE tenant_id = $1 AND status = 'dead' AND ($2 = '' OR id = $2) AND ($3 = '' OR campaign_id = $3) \
               AND (campaign_id IS NULL OR EXISTS (SELECT 1 FROM campaigns cp WHERE cp.id = messages.campaign_id \
                 AND cp.deleted_at IS NULL AND (cp.state IS NULL OR cp.state <> 'cancelled')))",
        )
        .bind(tenant_id)
        .bind(message_id.unwrap_or(""))
        .bind(campaign_id.unwrap_or(""))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Messages per priority lane and status, for the queue-depth gauges. Each
    /// part reads only its partial index (queued; sending, paused, dead), so the
    /// cost follows the work in progress, not the history of delivered mail.
    pub async fn queue_depth(&self) -> Result<Vec<(i64, String, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT priority, 'queued' AS status, COUNT(*) FROM messages WHERE status = 'queued' GROUP BY priority \
             UNION ALL \
             SELECT priority, status, COUNT(*) FROM messages WHERE status IN ('sending', 'paused', 'dead') \
             GROUP BY priority, status",
        )
        .fetch_all(&self.pool)
        .await
    }

    /// Ids of a campaign's messages, whatever their status (tests and diagnostics).
    pub async fn campaign_message_ids(
        &self,
        tenant_id: &TenantId,
        campaign_id: &str,
    ) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM messages WHERE tenant_id = $1 AND campaign_id = $2 ORDER BY id")
            .bind(tenant_id)
            .bind(campaign_id)
            .fetch_all(&self.pool)
            .await
    }

    /// The recipient address of each of these messages of the tenant (ids of
    /// another tenant's messages, or of none, are absent from the answer): what
    /// a list of events or automation runs shows instead of message ids.
    pub async fn recipients_of(
        &self,
        tenant_id: &TenantId,
        message_ids: &[&str],
    ) -> Result<std::collections::HashMap<String, String>, sqlx::Error> {
        let mut found = std::collections::HashMap::new();
        // A page's worth at a time: well under every backend's limit on bound values.
        for chunk in message_ids.chunks(200) {
            let sql = format!(
                "SELECT id, to_email FROM messages WHERE tenant_id = $1 AND id IN ({})",
                super::Placeholders::after(1).list(chunk.len())
            );
            let mut query = sqlx::query_as::<_, (String, String)>(&sql).bind(tenant_id);
            for id in chunk {
                query = query.bind(*id);
            }
            found.extend(query.fetch_all(&self.pool).await?);
        }
        Ok(found)
    }

    pub async fn message(&self, tenant_id: &TenantId, id: &str) -> Result<Option<MessageRow>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = $1 AND id = $2"))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// The messages sent to one address, newest first: campaign mail through
    /// the contact it went to (one probe of `messages_once_per_recipient` per
    /// campaign of the tenant), transactional mail by its address (compared
    /// case-insensitively) through the partial index `messages_recipient`.
    /// Campaign rows, written a million at a time, carry no extra index.
    pub async fn messages_to(
        &self,
        tenant_id: &TenantId,
        contact_id: Option<&str>,
        address: &str,
        limit: i64,
    ) -> Result<Vec<MessageRow>, sqlx::Error> {
        let transactional = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant_id = $1 AND campaign_id IS NULL \
             AND lower(to_email) = $2"
        );
        let address = address.to_lowercase();
        match contact_id {
            None => {
                sqlx::query_as(&format!("{transactional} ORDER BY created_at DESC, id DESC LIMIT $3"))
                    .bind(tenant_id)
                    .bind(&address)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
            Some(contact_id) => {
                sqlx::query_as(&format!(
                    "{transactional} UNION ALL SELECT {MESSAGE_COLUMNS} FROM messages \
                     WHERE campaign_id IN (SELECT id FROM campaigns WHERE tenant_id = $3) \
                     AND contact_id = $4 AND tenant_id = $5 ORDER BY created_at DESC, id DESC LIMIT $6"
                ))
                .bind(tenant_id)
                .bind(&address)
                .bind(tenant_id)
                .bind(contact_id)
                .bind(tenant_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
            }
        }
    }
}
