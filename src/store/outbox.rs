use sqlx::FromRow;

use super::{placeholders, Store};
use crate::domain::now_ms;

/// Most emails Resend takes in one `POST /emails/batch`.
pub const MAX_BATCH: i64 = 100;

/// A queued message as the worker renders it: campaign content already merged in.
#[derive(Clone, Debug, FromRow)]
pub struct ClaimedMessage {
    pub id: String,
    pub tenant_id: String,
    pub campaign_id: Option<String>,
    pub to_email: String,
    pub first_name: Option<String>,
    pub from_address: String,
    pub subject: String,
    pub html: String,
    pub text_body: Option<String>,
    pub reply_to: Option<String>,
    pub tags: Option<String>,
    /// 1 when a campaign message's contact is no longer a subscribed, unsuppressed contact.
    pub blocked: i64,
}

/// A provider request, exactly as it was (or will be) sent.
#[derive(Clone, Debug)]
pub struct OutboundBatch {
    pub id: String,
    pub tenant_id: String,
    pub idempotency_key: String,
    /// One email (`POST /emails`) rather than a batch.
    pub single: bool,
    /// Transactional mail, which takes precedence over campaigns for send slots.
    /// (Not the same as `single`: a campaign email split out of a rejected batch
    /// also goes alone.)
    pub transactional: bool,
    pub payload: String,
    pub attempts: i64,
    /// Message ids in payload order, so the provider's answer maps back to rows.
    pub message_ids: Vec<String>,
}

/// The result of claiming new work: what was sent to suppression instead, and the batch to send.
pub struct ClaimedBatch {
    pub suppressed: u64,
    /// Batches recorded and leased, ready to send.
    pub batches: Vec<OutboundBatch>,
}

#[derive(FromRow)]
struct BatchRow {
    id: String,
    tenant_id: String,
    idempotency_key: String,
    single: i64,
    payload: Option<String>,
    attempts: i64,
}

impl Store {
    /// Takes the oldest batch whose retry time (or lease) has come, and leases it
    /// for `lease_ms`. A batch whose worker died is found here once its lease runs out.
    pub async fn claim_due_batch(&self, lease_ms: i64) -> Result<Option<OutboundBatch>, sqlx::Error> {
        let now = now_ms();
        // A cheap read first: most steps find nothing due, and need no write lock for that.
        let any_due: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM batches WHERE status = 'pending' AND due_at <= $1 LIMIT 1")
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        if any_due.is_none() {
            return Ok(None);
        }
        let mut tx = self.begin_write().await?;
        let row: Option<BatchRow> = sqlx::query_as(&format!(
            "SELECT id, tenant_id, idempotency_key, single, payload, attempts FROM batches b \
             WHERE status = 'pending' AND due_at <= $1 ORDER BY due_at LIMIT 1{}",
            self.skip_locked("b")
        ))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        sqlx::query("UPDATE batches SET due_at = $2, attempts = attempts + 1, updated_at = $3 WHERE id = $1")
            .bind(&row.id)
            .bind(now + lease_ms)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let messages: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT id, campaign_id FROM messages WHERE batch_id = $1 ORDER BY id")
                .bind(&row.id)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        let transactional = messages.iter().all(|(_, campaign)| campaign.is_none());
        let message_ids = messages.into_iter().map(|(id, _)| id).collect();
        Ok(Some(OutboundBatch {
            id: row.id,
            tenant_id: row.tenant_id,
            idempotency_key: row.idempotency_key,
            single: row.single == 1,
            transactional,
            payload: row.payload.unwrap_or_default(),
            attempts: row.attempts + 1,
            message_ids,
        }))
    }

    /// Claims the next group of queued messages — transactional first, then up to
    /// [`MAX_BATCH`] of one campaign — drops those that may no longer be mailed,
    /// renders the rest with `render`, and records the batch with its idempotency
    /// key, all in one transaction, before anything is sent.
    pub async fn claim_new_batch(
        &self,
        lease_ms: i64,
        max_batches: usize,
        render: impl Fn(&[ClaimedMessage], bool) -> String,
    ) -> Result<Option<ClaimedBatch>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let head: Option<(String, Option<String>, i64)> = sqlx::query_as(&format!(
            "SELECT id, campaign_id, solo FROM messages m WHERE status = 'queued' AND due_at <= $1 \
             ORDER BY priority, due_at LIMIT 1{}",
            self.skip_locked("m")
        ))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((head_id, campaign_id, solo)) = head else {
            tx.commit().await?;
            return Ok(None);
        };
        // Transactional mail, and messages split out of a rejected batch, go alone.
        let single = campaign_id.is_none() || solo == 1;
        let (scope, scope_value) = match &campaign_id {
            Some(c) if !single => ("m.campaign_id = $2 AND m.solo = 0", c.clone()),
            _ => ("m.id = $2", head_id),
        };
        let claimed: Vec<ClaimedMessage> = sqlx::query_as(&format!(
            "SELECT m.id, m.tenant_id, m.campaign_id, m.to_email, m.first_name, \
               COALESCE(m.from_address, cp.from_address) AS from_address, COALESCE(m.subject, cp.subject) AS subject, \
               COALESCE(m.html, cp.html) AS html, COALESCE(m.text_body, cp.text_body) AS text_body, \
               COALESCE(m.reply_to, cp.reply_to) AS reply_to, m.tags, \
               CASE WHEN m.campaign_id IS NOT NULL AND NOT EXISTS ( \
                 SELECT 1 FROM contacts c WHERE c.id = m.contact_id AND c.status = 'subscribed' \
                   AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.tenant_id = c.tenant_id AND s.email_normalized = c.email_normalized)) \
               THEN 1 ELSE 0 END AS blocked \
             FROM messages m LEFT JOIN campaigns cp ON cp.id = m.campaign_id \
             WHERE {scope} AND m.status = 'queued' AND m.due_at <= $1 ORDER BY m.id LIMIT {limit}{}",
            self.skip_locked("m"),
            limit = MAX_BATCH * i64::try_from(max_batches.max(1)).unwrap_or(1),
        ))
        .bind(now)
        .bind(scope_value)
        .fetch_all(&mut *tx)
        .await?;

        let (blocked, sendable): (Vec<_>, Vec<_>) = claimed.into_iter().partition(|m| m.blocked == 1);
        if !blocked.is_empty() {
            let ids: Vec<&str> = blocked.iter().map(|m| m.id.as_str()).collect();
            set_status(&mut tx, &ids, "suppressed", now, None).await?;
        }
        let mut batches = Vec::new();
        for chunk in sendable.chunks(MAX_BATCH as usize) {
            let batch_id = crate::domain::new_id();
            // The key names the batch, so a retry of this exact request is recognised
            // by the provider (Resend keeps keys for 24 hours).
            let idempotency_key = format!("mailroom-batch-{batch_id}");
            let payload = render(chunk, single);
            let tenant_id = chunk[0].tenant_id.clone();
            sqlx::query(
                "INSERT INTO batches (id, tenant_id, idempotency_key, single, payload, status, attempts, due_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', 1, $6, $7, $7)",
            )
            .bind(&batch_id)
            .bind(&tenant_id)
            .bind(&idempotency_key)
            .bind(i64::from(single))
            .bind(&payload)
            .bind(now + lease_ms)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let message_ids: Vec<String> = chunk.iter().map(|m| m.id.clone()).collect();
            let ids: Vec<&str> = message_ids.iter().map(String::as_str).collect();
            set_status(&mut tx, &ids, "sending", now, Some(&batch_id)).await?;
            batches.push(OutboundBatch {
                id: batch_id,
                tenant_id,
                idempotency_key,
                single,
                transactional: campaign_id.is_none(),
                payload,
                attempts: 1,
                message_ids,
            });
        }
        tx.commit().await?;
        Ok(Some(ClaimedBatch { suppressed: blocked.len() as u64, batches }))
    }

    /// The provider accepted these batches: record their ids, in one transaction.
    /// A message that a webhook already moved past `sent` keeps its later status.
    pub async fn complete_batches(&self, done: &[(&OutboundBatch, &[String])]) -> Result<(), sqlx::Error> {
        if done.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        for (batch, provider_ids) in done {
            // One statement for the whole batch: `CASE id WHEN ... THEN <provider id>`.
            let pairs: Vec<(&String, &String)> = batch.message_ids.iter().zip(provider_ids.iter()).collect();
            let cases: String = (0..pairs.len()).map(|i| format!(" WHEN ${} THEN ${}", 4 + 2 * i, 5 + 2 * i)).collect();
            let sql = format!(
            "UPDATE messages SET provider_id = CASE id{cases} ELSE provider_id END, attempts = $2, updated_at = $3, \
               status = CASE WHEN status = 'sending' THEN 'sent' ELSE status END \
             WHERE batch_id = $1"
        );
            let mut q = sqlx::query(&sql).bind(&batch.id).bind(batch.attempts).bind(now);
            for (message_id, provider_id) in pairs {
                q = q.bind(message_id).bind(provider_id);
            }
            q.execute(&mut *tx).await?;
            sqlx::query("UPDATE batches SET status = 'sent', payload = NULL, updated_at = $2 WHERE id = $1")
                .bind(&batch.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// A retryable failure: try the same batch again at `due_at`. A rate-limit
    /// wait does not `count` as an attempt.
    pub async fn reschedule_batch(
        &self,
        batch: &OutboundBatch,
        due_at: i64,
        error: &str,
        count: bool,
    ) -> Result<(), sqlx::Error> {
        let batch_set = format!(", attempts = attempts - {}", u8::from(!count));
        self.settle_failed_batch(batch, error, &batch_set, "", Some(due_at)).await
    }

    /// A permanent failure, or retries exhausted: the batch's messages become
    /// dead letters, with the reason, for review and retry.
    pub async fn fail_batch(&self, batch: &OutboundBatch, error: &str) -> Result<(), sqlx::Error> {
        self.settle_failed_batch(batch, error, ", status = 'failed'", ", status = 'dead'", None).await
    }

    /// The provider rejected the whole batch as invalid: queue its messages again
    /// one by one, so only the invalid ones fail.
    pub async fn split_batch(&self, batch: &OutboundBatch, error: &str) -> Result<(), sqlx::Error> {
        let messages_set = ", status = 'queued', solo = 1, batch_id = NULL";
        self.settle_failed_batch(batch, error, ", status = 'split', payload = NULL", messages_set, None).await
    }

    /// Records a failed attempt in one transaction: the error (and a new `due_at`,
    /// if any) on the batch plus `batch_set`, and the error and attempt count on
    /// its messages still in flight plus `messages_set`.
    async fn settle_failed_batch(
        &self,
        batch: &OutboundBatch,
        error: &str,
        batch_set: &str,
        messages_set: &str,
        due_at: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        sqlx::query(&format!(
            "UPDATE batches SET last_error = $2, updated_at = $3, due_at = COALESCE($4, due_at){batch_set} \
             WHERE id = $1 AND status = 'pending'"
        ))
        .bind(&batch.id)
        .bind(error)
        .bind(now)
        .bind(due_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "UPDATE messages SET last_error = $2, updated_at = $3, attempts = $4{messages_set} \
             WHERE batch_id = $1 AND status = 'sending'"
        ))
        .bind(&batch.id)
        .bind(error)
        .bind(now)
        .bind(batch.attempts)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Messages waiting or in flight, for tests and readiness.
    pub async fn outbox_depth(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE status IN ('queued', 'sending')")
            .fetch_one(&self.pool)
            .await
    }
}

async fn set_status(
    tx: &mut sqlx::AnyConnection,
    ids: &[&str],
    status: &str,
    now: i64,
    batch_id: Option<&str>,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "UPDATE messages SET status = $1, updated_at = $2, batch_id = COALESCE($3, batch_id) WHERE id IN ({})",
        placeholders(4, ids.len())
    );
    let mut q = sqlx::query(&sql).bind(status).bind(now).bind(batch_id);
    for id in ids {
        q = q.bind(*id);
    }
    q.execute(&mut *tx).await.map(|_| ())
}
