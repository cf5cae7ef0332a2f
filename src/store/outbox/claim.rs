//! Claiming: queued messages into provider requests (batches) recorded with
//! their idempotency keys under a fresh claim token before anything is sent,
//! and batches due again (retries, lost leases) claimed or given up.

use std::collections::HashMap;

use sqlx::FromRow;

use super::turns::{self, Head, Turn, HEAD};
use super::{BatchShape, ClaimedBatch, DueBatch, OutboundBatch, MAX_BATCH};
use crate::domain::outbox_policy::{self, chunk_by_size, request_body, DueAgain, HOLD_MS};
use crate::domain::{hash_key, ClaimedMessage, RenderClaimed};
use crate::store::lease::{lease_recording, AlsoRecord, OUTBOX_BATCHES};
use crate::store::{placeholders, Backend, Store, WriteTx};

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
   tn.unsubscribe_footer, \
   CASE WHEN COALESCE(m.template_id, cp.template_id) IS NULL THEN 0 ELSE 1 END AS templated, \
   COALESCE(m.variables, cp.variables) AS variables, \
   CASE WHEN m.campaign_id IS NOT NULL OR m.list_unsubscribe = 1 THEN 1 ELSE 0 END AS list_unsubscribe";
/// Whether campaign message `m` may no longer be mailed: its contact is gone,
/// unsubscribed or suppressed.
const BLOCKED: &str = "CASE WHEN m.campaign_id IS NOT NULL AND NOT EXISTS ( \
     SELECT 1 FROM contacts c WHERE c.id = m.contact_id AND c.status = 'subscribed' \
       AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.tenant_id = c.tenant_id AND s.email_normalized = c.email_normalized)) \
   THEN 1 ELSE 0 END";

/// The messages `m` a claim takes: a condition on `$2`, the value for `$2`,
/// and how many at most.
type ClaimScope = (&'static str, String, usize);

/// The `WHERE` of a claim's messages `m` in `scope` (due by `$1`, `$2` the
/// scope's value), in the claim's order: the same read to render them and to
/// re-check them in the claim's transaction.
fn scope_clause(scope: &str, limit: usize) -> String {
    format!("{scope} AND m.status = 'queued' AND m.due_at <= $1 ORDER BY m.id LIMIT {limit}")
}

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

    /// Claims the next group of queued messages — transactional first, then up to
    /// `max_batches` requests of one campaign, whoever's turn it is (see
    /// [`Store::next_turn`]) — drops those that may no longer be mailed, and
    /// records each request with its idempotency key and claim token, all in
    /// one transaction, before anything is sent. A request holds at most
    /// [`MAX_BATCH`] emails and `max_bytes` of body.
    ///
    /// Rendering (tenants' templates, in worker processes) happens before that
    /// transaction, on what the claim would take as read a moment earlier:
    /// the write lock (all of it, on SQLite) is never held while a template
    /// runs. The transaction claims only messages rendered so; one that
    /// slipped in meanwhile waits for the next claim.
    pub async fn claim_new_batch(
        &self,
        lease_ms: i64,
        max_batches: usize,
        max_bytes: usize,
        render: &impl RenderClaimed,
    ) -> anyhow::Result<Option<ClaimedBatch>> {
        let Some(turn) = self.next_turn(false, &[]).await? else { return Ok(None) };
        self.claim_turn(&turn, lease_ms, max_batches, max_bytes, render).await.map(Some)
    }

    /// Claims the next transactional email, if one is queued, and nothing else.
    pub async fn claim_transactional(
        &self,
        lease_ms: i64,
        render: &impl RenderClaimed,
    ) -> anyhow::Result<Option<ClaimedBatch>> {
        let Some(turn) = self.next_turn(true, &[]).await? else { return Ok(None) };
        self.claim_turn(&turn, lease_ms, 1, usize::MAX, render).await.map(Some)
    }

    /// Claims what `turn` (from [`Store::next_turn`]) serves, as
    /// [`Store::claim_new_batch`] says, and charges its tenant the requests.
    pub async fn claim_turn(
        &self,
        turn: &Turn,
        lease_ms: i64,
        max_batches: usize,
        max_bytes: usize,
        render: &impl RenderClaimed,
    ) -> anyhow::Result<ClaimedBatch> {
        // What the claim would take, read and rendered outside the transaction.
        let head = &turn.head;
        let mut conn = self.pool.acquire().await?;
        // Which messages the claim takes: decided once, here, and used again
        // inside the transaction.
        let scope = match head.held() {
            true => None,
            false => Some(self.claim_scope(&mut conn, head, max_batches, max_bytes).await?),
        };
        let ahead = match &scope {
            Some(scope) => self.claimable(&mut conn, scope, self.now_ms()).await?,
            None => Vec::new(),
        };
        drop(conn);
        let unblocked: Vec<ClaimedMessage> = ahead.iter().filter(|m| m.blocked == 0).cloned().collect();
        let answers = render.render_claimed(&unblocked).await?;
        let mut renders: HashMap<String, Result<String, String>> =
            unblocked.into_iter().map(|m| m.id).zip(answers).collect();

        let mut tx = self.begin_write().await?;
        let now = tx.now;
        // The head as it is now: whether its campaign is held is read again.
        let head: Option<Head> =
            sqlx::query_as(&format!("{HEAD} WHERE m.id = $1")).bind(&head.id).fetch_optional(&mut *tx).await?;
        let Some(head) = head else {
            tx.commit().await?;
            return Ok(ClaimedBatch { suppressed: 0, batches: Vec::new() });
        };
        // A campaign of a tenant whose domain is not verified (the provider
        // reported it failing), or whose reputation is paused, is held: its
        // queued mail waits, re-checked every HOLD_MS, until the domain is
        // verified again or an admin resumes the tenant.
        let mut held = head.held();
        if held && head.domain_status.as_deref() == Some("verified") {
            // Held by its reputation alone: read that again, share-locked
            // (PostgreSQL). A resume committing meanwhile is then either seen
            // here (no hold), or waits for this transaction and releases what
            // it holds. Without the lock, a hold could land just after a
            // resume's release and keep the mail back.
            let lock = match self.backend {
                Backend::Postgres => " FOR SHARE",
                Backend::Sqlite => "",
            };
            let state: Option<String> = sqlx::query_scalar(&format!(
                "SELECT r.state FROM tenant_reputation r \
                 WHERE r.tenant_id = (SELECT m.tenant_id FROM messages m WHERE m.id = $1){lock}"
            ))
            .bind(&head.id)
            .fetch_optional(&mut *tx)
            .await?;
            held = state.as_deref() == Some("paused");
        }
        if let (true, Some(c)) = (held, &head.campaign_id) {
            // Rows another claim has locked are skipped (that claim holds them
            // itself): two claims of one campaign never wait on each other.
            let held = sqlx::query(&format!(
                "UPDATE messages SET due_at = $3 WHERE id IN (SELECT id FROM messages \
                   WHERE campaign_id = $1 AND status = 'queued' AND due_at <= $2{})",
                self.skip_locked("messages")
            ))
            .bind(c)
            .bind(now)
            .bind(now + HOLD_MS)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::warn!(campaign = %c, messages = held.rows_affected(), status = ?head.domain_status,
                reputation = ?head.reputation,
                "campaign held: its tenant's domain is not verified, or its reputation is paused");
            return Ok(ClaimedBatch { suppressed: 0, batches: Vec::new() });
        }
        let campaign_id = head.campaign_id.clone();
        let single = head.single();
        // Of the messages read above, those still queued (and not locked by
        // another claim), with whether each may still be mailed: the claim's
        // own query again (its plan follows the campaign's index), ids only.
        let Some((scope, scope_value, limit)) = scope else {
            // It was held when read, and no longer is: nothing was rendered.
            tx.commit().await?;
            return Ok(ClaimedBatch { suppressed: 0, batches: Vec::new() });
        };
        let still: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(&format!(
            "SELECT m.id, {BLOCKED} AS blocked FROM messages m WHERE {}{}",
            scope_clause(scope, limit),
            self.skip_locked("m")
        ))
        .bind(now)
        .bind(scope_value)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let claimed: Vec<ClaimedMessage> = ahead
            .into_iter()
            .filter_map(|mut m| {
                m.blocked = *still.get(&m.id)?;
                Some(m)
            })
            .collect();
        let (blocked, sendable): (Vec<_>, Vec<_>) = claimed.into_iter().partition(|m| m.blocked == 1);
        if !blocked.is_empty() {
            let ids: Vec<&str> = blocked.iter().map(|m| m.id.as_str()).collect();
            set_status(&mut tx, &ids, "suppressed", now, None).await?;
        }
        // A failed render is a dead letter, or pauses its campaign when its
        // renders keep failing; the others go, but for any not rendered above
        // (it came to the head of the queue meanwhile).
        let rendered = self.record_renders(&mut tx, campaign_id.as_deref(), &sendable, &mut renders).await?;
        let mut batches = Vec::new();
        for chunk in chunk_by_size(rendered, max_bytes) {
            let batch_id = crate::domain::new_id();
            // The key names the batch, so a retry of this exact request is recognised
            // by the provider (Resend keeps keys for 24 hours).
            let idempotency_key = format!("mailroom-batch-{batch_id}");
            let token = crate::domain::new_id();
            let payload = request_body(&chunk.iter().map(|(_, json)| json.clone()).collect::<Vec<_>>(), single);
            let tenant_id = chunk[0].0.tenant_id.clone();
            sqlx::query(
                "INSERT INTO batches (id, tenant_id, idempotency_key, single, payload_hash, status, attempts, claims, \
                   claim_token, due_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, 1, $6, $7, $8, $8)",
            )
            .bind(&batch_id)
            .bind(&tenant_id)
            .bind(&idempotency_key)
            .bind(i64::from(single))
            .bind(hash_key(&payload))
            .bind(&token)
            .bind(now + lease_ms)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let message_ids: Vec<String> = chunk.iter().map(|(m, _)| m.id.clone()).collect();
            let ids: Vec<&str> = message_ids.iter().map(String::as_str).collect();
            set_status(&mut tx, &ids, "sending", now, Some(&batch_id)).await?;
            batches.push(OutboundBatch {
                id: batch_id,
                tenant_id,
                idempotency_key,
                shape: BatchShape::new(campaign_id.is_none(), single),
                payload,
                attempt: 1,
                claim_token: token,
                uncertain_since: None,
                message_ids,
            });
        }
        turns::charge(&mut tx, turn, batches.len()).await?;
        tx.commit().await?;
        Ok(ClaimedBatch { suppressed: blocked.len() as u64, batches })
    }

    /// The messages of `scope` as a claim takes them: rendered and re-checked.
    async fn claimable(
        &self,
        conn: &mut sqlx::AnyConnection,
        (scope, scope_value, limit): &ClaimScope,
        now: i64,
    ) -> Result<Vec<ClaimedMessage>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {CLAIMED_COLUMNS}, {BLOCKED} AS blocked FROM {CLAIMED_FROM} WHERE {}",
            scope_clause(scope, *limit)
        ))
        .bind(now)
        .bind(scope_value)
        .fetch_all(&mut *conn)
        .await
    }

    /// Which messages `m` a claim headed by `head` takes: that one alone
    /// (transactional mail, and messages split out of a rejected batch), or as
    /// many of its campaign as the claim's requests can carry.
    async fn claim_scope(
        &self,
        conn: &mut sqlx::AnyConnection,
        head: &Head,
        max_batches: usize,
        max_bytes: usize,
    ) -> Result<ClaimScope, sqlx::Error> {
        Ok(match &head.campaign_id {
            Some(c) if !head.single() => {
                // Take no more than the requests can carry: a large body means
                // fewer emails per claim, so memory stays bounded.
                let size: Option<i64> = sqlx::query_scalar(
                    "SELECT LENGTH(html) + COALESCE(LENGTH(text_body), 0) + LENGTH(subject) FROM campaigns WHERE id = $1",
                )
                .bind(c)
                .fetch_optional(&mut *conn)
                .await?;
                let per_email = usize::try_from(size.unwrap_or(0)).unwrap_or(0).saturating_add(512);
                let by_bytes = (max_batches.max(1).saturating_mul(max_bytes) / per_email).max(1);
                let by_count = usize::try_from(MAX_BATCH).unwrap_or(100).saturating_mul(max_batches.max(1));
                ("m.campaign_id = $2 AND m.solo = 0", c.clone(), by_count.min(by_bytes))
            }
            _ => ("m.id = $2", head.id.clone(), 1),
        })
    }

    /// Keeps a claim alive while its worker waits for a send slot or for the
    /// provider. Returns false when the claim was lost (another worker has it).
    pub async fn renew_claim(&self, batch: &OutboundBatch, lease_ms: i64) -> Result<bool, sqlx::Error> {
        let done =
            sqlx::query("UPDATE batches SET due_at = $3 WHERE id = $1 AND claim_token = $2 AND status = 'pending'")
                .bind(&batch.id)
                .bind(&batch.claim_token)
                .bind(self.now_ms() + lease_ms)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
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
    let sql = crate::store::native_sql(tx, &sql);
    let mut q = sqlx::query(&sql).bind(status).bind(now).bind(batch_id);
    for id in ids {
        q = q.bind(*id);
    }
    q.execute(&mut *tx).await.map(|_| ())
}
