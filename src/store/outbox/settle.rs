//! Settling: recording what became of a provider request (accepted, partly
//! refused, to be retried, failed, split), only while the batch still holds
//! the claim token it was sent under.

use super::{OutboundBatch, Settlement};
use crate::domain::TenantId;
use crate::store::stats::{record_accepted, NewlySent};
use crate::store::{Placeholders, Store, WriteTx};

impl Store {
    /// The provider accepted these batches: record their ids, in one transaction
    /// (or, should that fail, one transaction per batch, so one bad write does not
    /// lose the others). `provider_ids` are in request order and as many as the
    /// batch's messages. A batch whose claim was lost is left to its new holder.
    /// A message that a webhook already moved past `sent` keeps its later status.
    /// Returns the batches recorded.
    pub async fn complete_batches(&self, done: &[(&OutboundBatch, &[String])]) -> Result<usize, sqlx::Error> {
        if done.is_empty() {
            return Ok(0);
        }
        let together = async {
            let mut tx = self.begin_write().await?;
            let mut recorded = 0;
            let mut sent = Vec::with_capacity(done.len());
            for (batch, ids) in done {
                recorded += usize::from(complete_one(&mut tx, batch, ids, &mut sent).await?);
            }
            let now = tx.now;
            record_accepted(&mut tx, &sent, now).await?;
            tx.commit().await?;
            Ok::<usize, sqlx::Error>(recorded)
        };
        match together.await {
            Ok(n) => Ok(n),
            Err(e) if done.len() > 1 => {
                tracing::warn!(error = %e, "recording accepted batches together failed; recording each alone");
                let mut recorded = 0;
                let mut last_error = None;
                for (batch, ids) in done {
                    let one = async {
                        let mut tx = self.begin_write().await?;
                        let mut sent = Vec::with_capacity(1);
                        let ok = complete_one(&mut tx, batch, ids, &mut sent).await?;
                        let now = tx.now;
                        record_accepted(&mut tx, &sent, now).await?;
                        tx.commit().await?;
                        Ok::<bool, sqlx::Error>(ok)
                    };
                    match one.await {
                        Ok(ok) => recorded += usize::from(ok),
                        Err(e) => {
                            tracing::error!(batch = %batch.id, error = %e, "could not record an accepted batch; it will be resent under its idempotency key");
                            last_error = Some(e);
                        }
                    }
                }
                match last_error {
                    Some(e) if recorded == 0 => Err(e),
                    _ => Ok(recorded),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A failed attempt that will be tried again at `due_at`. `counted`: whether
    /// it used up an attempt (a rate-limit wait does not). `uncertain`: whether
    /// the provider may have accepted it after all (a timeout, a dropped
    /// connection, a 5xx). Returns false when the claim was lost.
    pub async fn reschedule_batch(
        &self,
        s: Settlement<'_>,
        due_at: i64,
        counted: bool,
        uncertain: bool,
    ) -> Result<bool, sqlx::Error> {
        let now = self.now_ms();
        let uncertain_since = if uncertain { s.batch.uncertain_since.or(Some(now)) } else { s.batch.uncertain_since };
        self.settle_attempt(s, "pending", "sending", counted, Some(due_at), uncertain_since, "").await
    }

    /// A permanent failure, or retries exhausted: the batch's messages become
    /// dead letters, with the reason, for review and retry.
    pub async fn fail_batch(&self, s: Settlement<'_>) -> Result<bool, sqlx::Error> {
        let since = s.batch.uncertain_since;
        self.settle_attempt(s, "failed", "dead", true, None, since, "").await
    }

    /// The provider rejected the whole batch (invalid, or too large): queue its
    /// messages again one by one, so only the bad ones fail.
    pub async fn split_batch(&self, s: Settlement<'_>) -> Result<bool, sqlx::Error> {
        let since = s.batch.uncertain_since;
        self.settle_attempt(s, "split", "queued", true, None, since, ", solo = 1, batch_id = NULL").await
    }

    /// The provider accepted some emails of a batch and refused others
    /// (`x-batch-validation: permissive`): `accepted` pairs message ids with
    /// provider ids; each of `refused` (message id, reason) becomes a dead letter.
    pub async fn complete_partially(
        &self,
        batch: &OutboundBatch,
        accepted: &[(String, String)],
        refused: &[(String, String)],
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let summary = format!("{} of {} emails refused", refused.len(), batch.message_ids.len());
        if !fence(&mut tx, batch, "sent", None, true, batch.uncertain_since, Some(&summary), now).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        let sent = record_provider_ids(&mut tx, batch, accepted.iter().map(|(m, p)| (m, p)), now).await?;
        record_accepted(&mut tx, sent.as_slice(), now).await?;
        for (message_id, reason) in refused {
            sqlx::query(
                "UPDATE messages SET status = 'dead', last_error = $3, attempts = $4, updated_at = $5 \
                 WHERE batch_id = $1 AND id = $2 AND status = 'sending'",
            )
            .bind(&batch.id)
            .bind(message_id)
            .bind(reason)
            .bind(batch.attempt)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records a failed attempt in one transaction, if the claim is still held:
    /// the batch's new status (and retry time), and on its messages still in
    /// flight the error, the attempt count, `message_status` and `messages_set`.
    #[allow(clippy::too_many_arguments)]
    async fn settle_attempt(
        &self,
        s: Settlement<'_>,
        batch_status: &str,
        message_status: &str,
        counted: bool,
        due_at: Option<i64>,
        uncertain_since: Option<i64>,
        messages_set: &str,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        if !fence(&mut tx, s.batch, batch_status, due_at, counted, uncertain_since, Some(s.error), now).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        let attempts = if counted { s.batch.attempt } else { s.batch.attempt - 1 };
        sqlx::query(&format!(
            "UPDATE messages SET status = $5, last_error = $2, updated_at = $3, attempts = $4{messages_set} \
             WHERE batch_id = $1 AND status = 'sending'"
        ))
        .bind(&s.batch.id)
        .bind(s.error)
        .bind(now)
        .bind(attempts)
        .bind(message_status)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Stops a campaign's batches that wait for a retry (nobody holds them), with
    /// their messages; batches in flight finish, and are stopped at their next claim.
    pub(crate) async fn cancel_waiting_batches(
        tx: &mut WriteTx,
        tenant_id: &TenantId,
        campaign_id: &str,
        now: i64,
    ) -> Result<u64, sqlx::Error> {
        let waiting = "SELECT b.id FROM batches b WHERE b.tenant_id = $1 AND b.status = 'pending' \
             AND b.claim_token IS NULL AND b.id IN (SELECT m.batch_id FROM messages m \
               WHERE m.tenant_id = $1 AND m.campaign_id = $2 AND m.status = 'sending')";
        let messages = sqlx::query(&format!(
            "UPDATE messages SET status = 'cancelled', updated_at = $3 \
             WHERE tenant_id = $1 AND campaign_id = $2 AND status = 'sending' AND batch_id IN ({waiting})"
        ))
        .bind(tenant_id)
        .bind(campaign_id)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        // The messages above no longer say `sending`, so find the batches by campaign.
        sqlx::query(
            "UPDATE batches SET status = 'cancelled', updated_at = $3 WHERE tenant_id = $1 AND status = 'pending' \
             AND claim_token IS NULL AND id IN (SELECT m.batch_id FROM messages m \
               WHERE m.tenant_id = $1 AND m.campaign_id = $2 AND m.batch_id IS NOT NULL)",
        )
        .bind(tenant_id)
        .bind(campaign_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(messages)
    }
}

/// Moves a batch held under `batch.claim_token` to `status`, releasing the
/// claim. False when the batch no longer holds that token (or is no longer pending).
#[allow(clippy::too_many_arguments)]
async fn fence(
    tx: &mut WriteTx,
    batch: &OutboundBatch,
    status: &str,
    due_at: Option<i64>,
    counted: bool,
    uncertain_since: Option<i64>,
    error: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE batches SET status = $3, due_at = COALESCE($4, due_at), attempts = attempts + $5, \
           uncertain_since = $6, last_error = COALESCE($7, last_error), claim_token = NULL, updated_at = $8 \
         WHERE id = $1 AND claim_token = $2 AND status = 'pending'",
    )
    .bind(&batch.id)
    .bind(&batch.claim_token)
    .bind(status)
    .bind(due_at)
    .bind(i64::from(counted))
    .bind(uncertain_since)
    .bind(error)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        tracing::warn!(batch = %batch.id, "claim lost before its outcome was recorded; the batch's current holder records it");
    }
    Ok(done.rows_affected() == 1)
}

/// Records one accepted batch, if its claim is still held (false if not),
/// adding what it counted as sent to `sent`.
async fn complete_one(
    tx: &mut WriteTx,
    batch: &OutboundBatch,
    provider_ids: &[String],
    sent: &mut Vec<NewlySent>,
) -> Result<bool, sqlx::Error> {
    let now = tx.now;
    if !fence(tx, batch, "sent", None, false, batch.uncertain_since, None, now).await? {
        return Ok(false);
    }
    // A batch can have no messages left to mark (its tenant was deleted): it is settled all the same.
    if batch.message_ids.is_empty() {
        return Ok(true);
    }
    let pairs = batch.message_ids.iter().zip(provider_ids.iter());
    sent.extend(record_provider_ids(tx, batch, pairs, now).await?);
    Ok(true)
}

/// Records the provider's ids of a batch's accepted messages, in one statement
/// (`CASE id WHEN ... THEN <provider id>`), and counts them as sent where
/// nothing counted them before (see [`crate::store::stats`]): those it marks
/// `sent_counted = 1` are then the batch's messages at 1, counted in one
/// read, not returned row by row. Accepted is accepted: a message marked dead
/// or cancelled meanwhile was delivered after all; a webhook that already
/// moved one past `sent` keeps its later status.
async fn record_provider_ids<'a>(
    tx: &mut WriteTx,
    batch: &OutboundBatch,
    pairs: impl Iterator<Item = (&'a String, &'a String)>,
    now: i64,
) -> Result<Option<NewlySent>, sqlx::Error> {
    let pairs: Vec<(&String, &String)> = pairs.collect();
    if pairs.is_empty() {
        return Ok(None);
    }
    // Numbered in the order written: see `native_sql`.
    let mut p = Placeholders::after(0);
    let cases: String = pairs.iter().map(|_| format!(" WHEN {} THEN {}", p.next(), p.next())).collect();
    let (attempts, updated_at, batch_id) = (p.next(), p.next(), p.next());
    let ids = p.list(pairs.len());
    let sql = format!(
        "UPDATE messages SET provider_id = CASE id{cases} ELSE provider_id END, attempts = {attempts}, \
           updated_at = {updated_at}, status = CASE WHEN status IN ('sending', 'dead', 'cancelled') THEN 'sent' ELSE status END, \
           sent_counted = CASE WHEN sent_counted = 0 THEN 1 ELSE 2 END \
         WHERE batch_id = {batch_id} AND id IN ({ids})"
    );
    let sql = crate::store::native_sql(tx, &sql);
    let mut q = sqlx::query(&sql);
    for (message_id, provider_id) in &pairs {
        q = q.bind(*message_id).bind(*provider_id);
    }
    q = q.bind(batch.attempt).bind(now).bind(&batch.id);
    for (message_id, _) in &pairs {
        q = q.bind(*message_id);
    }
    q.execute(&mut **tx).await?;
    // Counted just now: at 1 (a count before is 2 now; on PostgreSQL the rows
    // stay locked by this transaction, so no webhook counts them meanwhile).
    let sql = format!(
        "SELECT campaign_id, COUNT(*) FROM messages WHERE batch_id = $1 AND sent_counted = 1 AND id IN ({}) \
         GROUP BY campaign_id",
        crate::store::placeholders(2, pairs.len())
    );
    let sql = crate::store::native_sql(tx, &sql);
    let mut q = sqlx::query_as::<_, (Option<String>, i64)>(&sql).bind(&batch.id);
    for (message_id, _) in &pairs {
        q = q.bind(*message_id);
    }
    let counted = q.fetch_optional(&mut **tx).await?;
    Ok(counted.map(|(campaign_id, n)| NewlySent { tenant_id: batch.tenant_id.clone(), campaign_id, n }))
}
