//! Batches due again — a retry whose time has come, or a claim whose lease
//! ran out — claimed under a new token and rendered as when first claimed,
//! or given up (the rules are [`crate::domain::outbox_policy`]'s).

use sqlx::FromRow;

use super::{turns, BatchShape, DueBatch, OutboundBatch};
use crate::domain::outbox_policy::{self, request_body, DueAgain};
use crate::domain::{hash_key, ClaimedMessage, RenderClaimed};
use crate::store::lease::{lease_recording, AlsoRecord, OUTBOX_BATCHES};
use crate::store::{Store, WriteTx};

#[derive(FromRow)]
struct DueRow {
    id: String,
    tenant_id: String,
    idempotency_key: String,
    single: i64,
    payload: Option<String>,
    payload_hash: Option<String>,
    attempts: i64,
    claims: i64,
    claim_token: Option<String>,
    uncertain_since: Option<i64>,
    updated_at: i64,
}

/// Columns of [`ClaimedMessage`] (all but `blocked`) for messages `m` joined
/// as in [`CLAIMED_FROM`].
const CLAIMED_COLUMNS: &str = "m.id, m.tenant_id, m.campaign_id, m.to_email, m.first_name, \
   COALESCE(m.from_address, cp.from_address) AS from_address, COALESCE(m.subject, cp.subject) AS subject, \
   COALESCE(m.html, cp.html) AS html, COALESCE(m.text_body, cp.text_body) AS text_body, \
   COALESCE(m.reply_to, cp.reply_to) AS reply_to, m.tags, ct.last_name, ct.attributes, tn.name AS tenant_name, \
   tn.locale AS tenant_locale, tn.unsubscribe_footer, \
   CASE WHEN COALESCE(m.template_id, cp.template_id) IS NULL THEN 0 ELSE 1 END AS templated, \
   COALESCE(m.variables, cp.variables) AS variables, \
   CASE WHEN m.campaign_id IS NOT NULL OR m.list_unsubscribe = 1 THEN 1 ELSE 0 END AS list_unsubscribe";
/// Messages `m` with their campaign `cp`, contact `ct` and tenant `tn`.
const CLAIMED_FROM: &str = "messages m LEFT JOIN campaigns cp ON cp.id = m.campaign_id \
   LEFT JOIN contacts ct ON ct.id = m.contact_id JOIN tenants tn ON tn.id = m.tenant_id";
impl Store {
    /// Takes the oldest batch whose retry time (or lease) has come and claims it
    /// for `lease_ms` under a new token. A batch whose worker died is found here
    /// once its lease runs out; that lost claim does not count as an attempt.
    /// `render` turns each message into its email's JSON, as when first claimed.
    pub async fn claim_due_batch(&self, lease_ms: i64, render: &impl RenderClaimed) -> anyhow::Result<DueBatch> {
        let now = self.now_ms();
        // A cheap read first: most steps find nothing due, and need no write lock for that.
        let due: Option<(String, i64)> = sqlx::query_as(
            "SELECT id, CASE WHEN payload IS NULL THEN 1 ELSE 0 END FROM batches \
             WHERE status = 'pending' AND due_at <= $1 ORDER BY due_at LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some((due_id, unrendered)) = due else { return Ok(DueBatch::None) };
        // Rendered again as when first claimed, before the write transaction
        // (see `claim_new_batch`). A template can fail for a recipient whose
        // data changed since: the batch is then given up.
        let mut rendered: Result<Vec<String>, String> = Ok(Vec::new());
        if unrendered == 1 {
            let messages: Vec<ClaimedMessage> = sqlx::query_as::<_, DueMessage>(&format!(
                "SELECT {CLAIMED_COLUMNS}, 0 AS blocked, cp.state AS campaign_state, cp.deleted_at AS campaign_deleted_at \
                 FROM {CLAIMED_FROM} WHERE m.batch_id = $1 ORDER BY m.id"
            ))
            .bind(&due_id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|d| d.message)
            .collect();
            let answers = render.render_claimed(&messages).await?;
            rendered = if answers.len() < messages.len() {
                Err("the batch now renders to more than its requests can carry; its template or data changed".into())
            } else {
                answers.into_iter().collect()
            };
        }
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let row: Option<DueRow> = sqlx::query_as(&self.due_rows_sql(
            &OUTBOX_BATCHES,
            "SELECT id, tenant_id, idempotency_key, single, payload, payload_hash, attempts, claims, claim_token, \
               uncertain_since, updated_at FROM batches b",
        ))
        .bind(now)
        .bind(1_i64)
        .fetch_optional(&mut *tx)
        .await?;
        // Another worker took the batch rendered above: this one is for a later step.
        let Some(row) = row.filter(|r| r.id == due_id) else {
            tx.commit().await?;
            return Ok(DueBatch::None);
        };
        // A claim still held means its worker never reported: that attempt may
        // have reached the provider (at the latest when it was claimed).
        let uncertain_since =
            outbox_policy::uncertain_since(row.claim_token.is_some(), row.uncertain_since, row.updated_at);
        let messages: Vec<(ClaimedMessage, Option<String>, Option<i64>)> = sqlx::query_as::<_, DueMessage>(&format!(
            "SELECT {CLAIMED_COLUMNS}, 0 AS blocked, cp.state AS campaign_state, cp.deleted_at AS campaign_deleted_at \
             FROM {CLAIMED_FROM} WHERE m.batch_id = $1 ORDER BY m.id"
        ))
        .bind(&row.id)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|d| (d.message, d.campaign_state, d.campaign_deleted_at))
        .collect();

        if rendered.as_ref().is_ok_and(|r| row.payload.is_none() && r.len() != messages.len()) {
            rendered = Err("the batch's messages changed while it was rendered".into());
        }
        let stopped = messages.is_empty()
            || messages.iter().any(|(_, state, deleted)| deleted.is_some() || state.as_deref() == Some("cancelled"));
        let due = DueAgain {
            stopped,
            uncertain_since,
            render_error: rendered.as_ref().err().map(String::as_str),
            claims: row.claims,
            attempts: row.attempts,
        };
        if let Some(g) = outbox_policy::give_up(&due, now) {
            let settled = settle_unclaimed(&mut tx, &row.id, g.batch_status, g.message_status, &g.reason, now).await?;
            tx.commit().await?;
            return Ok(DueBatch::Settled { status: g.message_status, messages: settled });
        }

        let also = AlsoRecord::BatchClaim { uncertain_since };
        let token = lease_recording(&mut tx, &OUTBOX_BATCHES, &[row.id.as_str()], lease_ms, now, also).await?;
        let transactional = messages.iter().all(|(m, _, _)| m.campaign_id.is_none());
        // A retry is a request like any other: its tenant's turn pays for it.
        turns::charge_retry(&mut tx, &row.tenant_id, transactional).await?;
        tx.commit().await?;

        let single = row.single == 1;
        // Batches written before bodies were rendered on demand carry their body.
        let payload = match (row.payload, rendered) {
            (Some(p), _) => p,
            (None, emails) => {
                let emails = emails.unwrap_or_default();
                let body = request_body(&emails, single);
                if row.payload_hash.as_deref().is_some_and(|h| h != hash_key(&body)) {
                    tracing::warn!(batch = %row.id, "a retry renders differently from the first attempt; the provider may refuse it");
                }
                body
            }
        };
        Ok(DueBatch::Claimed(OutboundBatch {
            id: row.id,
            tenant_id: row.tenant_id,
            idempotency_key: row.idempotency_key,
            shape: BatchShape::new(transactional, single),
            payload,
            attempt: row.attempts + 1,
            claim_token: token,
            uncertain_since,
            message_ids: messages.into_iter().map(|(m, _, _)| m.id).collect(),
        }))
    }
}

#[derive(FromRow)]
struct DueMessage {
    #[sqlx(flatten)]
    message: ClaimedMessage,
    campaign_state: Option<String>,
    campaign_deleted_at: Option<i64>,
}

/// Settles a due batch without sending it: the batch to `batch_status`, its
/// messages still in flight to `message_status` with `reason`.
async fn settle_unclaimed(
    tx: &mut WriteTx,
    batch_id: &str,
    batch_status: &str,
    message_status: &str,
    reason: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    sqlx::query("UPDATE batches SET status = $2, last_error = $3, claim_token = NULL, updated_at = $4 WHERE id = $1")
        .bind(batch_id)
        .bind(batch_status)
        .bind(reason)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    let done = sqlx::query(
        "UPDATE messages SET status = $2, last_error = $3, updated_at = $4 WHERE batch_id = $1 AND status = 'sending'",
    )
    .bind(batch_id)
    .bind(message_status)
    .bind(reason)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}
