//! The outbox's SQL: claiming queued messages into provider requests (batches),
//! and recording what became of each request.
//!
//! Every claim carries a fresh token. The outcome of a provider call is
//! recorded only while the batch still holds that token, so a worker whose lease
//! ran out (it stalled, or its call took too long) can never overwrite what the
//! batch's next holder recorded.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use sqlx::FromRow;

use super::{placeholders, Placeholders, Store, WriteTx};
use crate::domain::{ClaimedMessage, RenderClaimed, TenantId};

/// Most emails Resend takes in one `POST /emails/batch`.
pub const MAX_BATCH: i64 = 100;

/// Resend keeps an `Idempotency-Key` for 24 hours. A request whose earlier
/// attempt may have been accepted is resent under the same key only inside this
/// window (with an hour's margin); later it goes to the dead letters for review.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 23 * 3_600_000;

/// How long a held campaign's queued mail waits before its tenant's domain is checked again.
pub const HOLD_MS: i64 = 30_000;

/// Claims that ended without an answer (the worker died) before a batch is
/// given up as a dead letter rather than claimed forever.
pub const MAX_LOST_CLAIMS: i64 = 5;

/// What kind of provider request a batch is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchShape {
    /// One transactional email (`POST /emails`), ahead of campaign mail for send slots.
    Transactional,
    /// Up to [`MAX_BATCH`] emails of one campaign (`POST /emails/batch`).
    Campaign,
    /// One campaign email split out of a batch the provider refused (`POST
    /// /emails`): it goes alone, but keeps campaign priority.
    CampaignSingle,
}

impl BatchShape {
    fn new(transactional: bool, single: bool) -> Self {
        match (transactional, single) {
            (true, _) => Self::Transactional,
            (false, true) => Self::CampaignSingle,
            (false, false) => Self::Campaign,
        }
    }

    /// One email (`POST /emails`) rather than a batch.
    pub fn single(self) -> bool {
        self != Self::Campaign
    }

    /// Transactional mail takes precedence over campaigns for send slots.
    pub fn transactional(self) -> bool {
        self == Self::Transactional
    }
}

/// A provider request, exactly as it was (or will be) sent.
#[derive(Clone, Debug)]
pub struct OutboundBatch {
    pub id: String,
    pub tenant_id: String,
    pub idempotency_key: String,
    pub shape: BatchShape,
    pub payload: String,
    /// This try's number, from 1. Only provider answers count; a claim lost to a
    /// crash does not.
    pub attempt: i64,
    /// Fences this claim: an outcome is recorded only while the batch holds it.
    pub claim_token: String,
    /// When an earlier attempt's outcome became unknown (it may have been accepted).
    pub uncertain_since: Option<i64>,
    /// Message ids in payload order, so the provider's answer maps back to rows.
    pub message_ids: Vec<String>,
}

/// The result of claiming new work: what was sent to suppression instead, and the batches to send.
pub struct ClaimedBatch {
    pub suppressed: u64,
    /// Batches recorded and leased, ready to send.
    pub batches: Vec<OutboundBatch>,
}

/// What claiming a batch that is due again (a retry, or a lease that ran out) found.
pub enum DueBatch {
    /// Nothing is due.
    None,
    /// Claimed: send it.
    Claimed(OutboundBatch),
    /// Settled without sending: its campaign was cancelled or deleted, or
    /// resending could duplicate (the idempotency window has passed), or its
    /// claims kept being lost. Says how many messages it settled and how.
    Settled { status: &'static str, messages: u64 },
}

/// How the provider's answer is recorded: which batch, under which claim.
pub struct Settlement<'a> {
    pub batch: &'a OutboundBatch,
    pub error: &'a str,
}

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

/// Renders messages into the request body: one email, or a JSON array of them.
/// The same messages always give the same bytes.
pub fn request_body(emails: &[String], single: bool) -> String {
    match emails {
        [one] if single => one.clone(),
        _ => format!("[{}]", emails.join(",")),
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
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

/// [`Head`]s of messages `m`, to be narrowed by a `WHERE`.
const HEAD: &str = "SELECT m.id, m.campaign_id, m.solo, t.domain_status, r.state AS reputation \
   FROM messages m JOIN tenants t ON t.id = m.tenant_id LEFT JOIN tenant_reputation r ON r.tenant_id = m.tenant_id";

/// The messages `m` a claim takes: a condition on `$2`, the value for `$2`,
/// and how many at most.
type ClaimScope = (&'static str, String, usize);

/// The `WHERE` of a claim's messages `m` in `scope` (due by `$1`, `$2` the
/// scope's value), in the claim's order: the same read to render them and to
/// re-check them in the claim's transaction.
fn scope_clause(scope: &str, limit: usize) -> String {
    format!("{scope} AND m.status = 'queued' AND m.due_at <= $1 ORDER BY m.id LIMIT {limit}")
}

/// The head of the queue.
#[derive(FromRow)]
struct Head {
    id: String,
    campaign_id: Option<String>,
    solo: i64,
    domain_status: Option<String>,
    reputation: Option<String>,
}

impl Head {
    /// Whether its claim is one message alone: transactional mail, and
    /// messages split out of a rejected batch.
    fn single(&self) -> bool {
        self.campaign_id.is_none() || self.solo == 1
    }

    /// Whether its campaign is held (as first read: the claim reads it again).
    fn held(&self) -> bool {
        self.campaign_id.is_some()
            && (self.domain_status.as_deref() != Some("verified") || self.reputation.as_deref() == Some("paused"))
    }
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
        let row: Option<DueRow> = sqlx::query_as(&format!(
            "SELECT id, tenant_id, idempotency_key, single, payload, payload_hash, attempts, claims, claim_token, \
               uncertain_since, updated_at FROM batches b \
             WHERE status = 'pending' AND due_at <= $1 ORDER BY due_at LIMIT 1{}",
            self.skip_locked("b")
        ))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        // Another worker took the batch rendered above: this one is for a later step.
        let Some(row) = row.filter(|r| r.id == due_id) else {
            tx.commit().await?;
            return Ok(DueBatch::None);
        };
        // A claim still held means its worker never reported: that attempt may
        // have reached the provider (at the latest when it was claimed).
        let uncertain_since = match (&row.claim_token, row.uncertain_since) {
            (_, Some(t)) => Some(t),
            (Some(_), None) => Some(row.updated_at),
            (None, None) => None,
        };
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
        let give_up = if stopped {
            Some(("cancelled", "cancelled", "the campaign was cancelled or deleted before this retry".to_owned()))
        } else if uncertain_since.is_some_and(|t| now - t > IDEMPOTENCY_WINDOW_MS) {
            Some((
                "expired",
                "dead",
                "not retried: an earlier attempt may have been delivered and Resend's 24 h idempotency window \
                 has passed, so a retry could send it twice; check the provider before retrying this dead letter"
                    .to_owned(),
            ))
        } else if let Err(reason) = &rendered {
            Some(("failed", "dead", reason.clone()))
        } else if row.claims - row.attempts >= MAX_LOST_CLAIMS {
            Some((
                "failed",
                "dead",
                format!("claimed {} times without an answer from the provider; check the worker logs", row.claims),
            ))
        } else {
            None
        };
        if let Some((batch_status, message_status, reason)) = give_up {
            let settled = settle_unclaimed(&mut tx, &row.id, batch_status, message_status, &reason, now).await?;
            tx.commit().await?;
            return Ok(DueBatch::Settled { status: message_status, messages: settled });
        }

        let token = crate::domain::new_id();
        sqlx::query(
            "UPDATE batches SET due_at = $2, claims = claims + 1, claim_token = $3, uncertain_since = $4, updated_at = $5 \
             WHERE id = $1",
        )
        .bind(&row.id)
        .bind(now + lease_ms)
        .bind(&token)
        .bind(uncertain_since)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;

        let transactional = messages.iter().all(|(m, _, _)| m.campaign_id.is_none());
        let single = row.single == 1;
        // Batches written before bodies were rendered on demand carry their body.
        let payload = match (row.payload, rendered) {
            (Some(p), _) => p,
            (None, emails) => {
                let emails = emails.unwrap_or_default();
                let body = request_body(&emails, single);
                if row.payload_hash.as_deref().is_some_and(|h| h != sha256_hex(&body)) {
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
    /// `max_batches` requests of one campaign — drops those that may no longer be
    /// mailed, and records each request with its idempotency key and claim
    /// token, all in one transaction, before anything is sent. A request holds
    /// at most [`MAX_BATCH`] emails and `max_bytes` of body.
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
        self.claim_new(lease_ms, max_batches, max_bytes, render, false).await
    }

    /// Claims the next transactional email, if one is queued, and nothing
    /// else: a claim beside another that is busy rendering a campaign, so
    /// transactional mail never waits for a campaign's template.
    pub async fn claim_transactional(
        &self,
        lease_ms: i64,
        render: &impl RenderClaimed,
    ) -> anyhow::Result<Option<ClaimedBatch>> {
        self.claim_new(lease_ms, 1, usize::MAX, render, true).await
    }

    async fn claim_new(
        &self,
        lease_ms: i64,
        max_batches: usize,
        max_bytes: usize,
        render: &impl RenderClaimed,
        transactional_only: bool,
    ) -> anyhow::Result<Option<ClaimedBatch>> {
        // What the claim would take, read and rendered outside the transaction.
        let mut conn = self.pool.acquire().await?;
        let Some(head) = self.queue_head(&mut conn, self.now_ms(), transactional_only).await? else { return Ok(None) };
        // Which messages the claim takes: decided once, here, and used again
        // inside the transaction.
        let scope = match head.held() {
            true => None,
            false => Some(self.claim_scope(&mut conn, &head, max_batches, max_bytes).await?),
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
        let now = self.now_ms();
        // The head as it is now: whether its campaign is held is read again.
        let head: Option<Head> =
            sqlx::query_as(&format!("{HEAD} WHERE m.id = $1")).bind(&head.id).fetch_optional(&mut *tx).await?;
        let Some(head) = head else {
            tx.commit().await?;
            return Ok(Some(ClaimedBatch { suppressed: 0, batches: Vec::new() }));
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
                super::Backend::Postgres => " FOR SHARE",
                super::Backend::Sqlite => "",
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
            return Ok(Some(ClaimedBatch { suppressed: 0, batches: Vec::new() }));
        }
        let campaign_id = head.campaign_id.clone();
        let single = head.single();
        // Of the messages read above, those still queued (and not locked by
        // another claim), with whether each may still be mailed: the claim's
        // own query again (its plan follows the campaign's index), ids only.
        let Some((scope, scope_value, limit)) = scope else {
            // It was held when read, and no longer is: nothing was rendered.
            tx.commit().await?;
            return Ok(Some(ClaimedBatch { suppressed: 0, batches: Vec::new() }));
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
        // A message whose template cannot be rendered for its recipient becomes
        // a dead letter with the reason; the others go, but for any not
        // rendered above (it came to the head of the queue meanwhile).
        let mut rendered = Vec::with_capacity(sendable.len());
        for m in &sendable {
            match renders.remove(&m.id) {
                None => {}
                Some(Ok(json)) => rendered.push((m, json)),
                Some(Err(reason)) => {
                    sqlx::query("UPDATE messages SET status = 'dead', last_error = $2, updated_at = $3 WHERE id = $1")
                        .bind(&m.id)
                        .bind(&reason)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
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
            .bind(sha256_hex(&payload))
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
        tx.commit().await?;
        Ok(Some(ClaimedBatch { suppressed: blocked.len() as u64, batches }))
    }

    /// The message at the head of the queue, with what decides whether it is held.
    /// With `transactional_only`, only transactional mail counts (it is first
    /// in the queue's index, so this stops at once when there is none).
    async fn queue_head(
        &self,
        conn: &mut sqlx::AnyConnection,
        now: i64,
        transactional_only: bool,
    ) -> Result<Option<Head>, sqlx::Error> {
        let only = if transactional_only {
            format!(" AND m.priority = {}", super::enqueue::PRIORITY_TRANSACTIONAL)
        } else {
            String::new()
        };
        sqlx::query_as(&format!(
            "{HEAD} WHERE m.status = 'queued' AND m.due_at <= $1{only} ORDER BY m.priority, m.due_at LIMIT 1"
        ))
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
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
            for (batch, ids) in done {
                recorded += usize::from(complete_one(&mut tx, batch, ids).await?);
            }
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
                        let ok = complete_one(&mut tx, batch, ids).await?;
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
        let now = self.now_ms();
        let summary = format!("{} of {} emails refused", refused.len(), batch.message_ids.len());
        if !fence(&mut tx, batch, "sent", None, true, batch.uncertain_since, Some(&summary), now).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        record_provider_ids(&mut tx, batch, accepted.iter().map(|(m, p)| (m, p)), now).await?;
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
        let now = self.now_ms();
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

    /// Messages waiting or in flight, for tests and readiness.
    pub async fn outbox_depth(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE status IN ('queued', 'sending')")
            .fetch_one(&self.pool)
            .await
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

#[derive(FromRow)]
struct DueMessage {
    #[sqlx(flatten)]
    message: ClaimedMessage,
    campaign_state: Option<String>,
    campaign_deleted_at: Option<i64>,
}

/// Groups rendered emails into requests of at most [`MAX_BATCH`] emails and
/// (unless one email alone is larger) `max_bytes` of body.
fn chunk_by_size(rendered: Vec<(&ClaimedMessage, String)>, max_bytes: usize) -> Vec<Vec<(&ClaimedMessage, String)>> {
    let mut chunks: Vec<Vec<(&ClaimedMessage, String)>> = Vec::new();
    let mut bytes = 0;
    for (m, json) in rendered {
        let fits = chunks
            .last()
            .is_some_and(|c| (c.len() as i64) < MAX_BATCH && bytes + json.len() < max_bytes.saturating_sub(2));
        if !fits {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += json.len() + 1;
        if let Some(c) = chunks.last_mut() {
            c.push((m, json));
        }
    }
    chunks
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

/// Records one accepted batch, if its claim is still held.
async fn complete_one(tx: &mut WriteTx, batch: &OutboundBatch, provider_ids: &[String]) -> Result<bool, sqlx::Error> {
    let now = tx.now;
    if !fence(tx, batch, "sent", None, false, batch.uncertain_since, None, now).await? {
        return Ok(false);
    }
    // A batch can have no messages left to mark (its tenant was deleted): it is settled all the same.
    if batch.message_ids.is_empty() {
        return Ok(true);
    }
    let pairs = batch.message_ids.iter().zip(provider_ids.iter());
    record_provider_ids(tx, batch, pairs, now).await?;
    Ok(true)
}

/// Records the provider's ids of a batch's accepted messages, in one statement
/// (`CASE id WHEN ... THEN <provider id>`). Accepted is accepted: a message
/// marked dead or cancelled meanwhile was delivered after all; a webhook that
/// already moved one past `sent` keeps its later status.
async fn record_provider_ids<'a>(
    tx: &mut WriteTx,
    batch: &OutboundBatch,
    pairs: impl Iterator<Item = (&'a String, &'a String)>,
    now: i64,
) -> Result<(), sqlx::Error> {
    let pairs: Vec<(&String, &String)> = pairs.collect();
    if pairs.is_empty() {
        return Ok(());
    }
    // Numbered in the order written: see `native_sql`.
    let mut p = Placeholders::after(0);
    let cases: String = pairs.iter().map(|_| format!(" WHEN {} THEN {}", p.next(), p.next())).collect();
    let (attempts, updated_at, batch_id) = (p.next(), p.next(), p.next());
    let ids = p.list(pairs.len());
    let sql = format!(
        "UPDATE messages SET provider_id = CASE id{cases} ELSE provider_id END, attempts = {attempts}, \
           updated_at = {updated_at}, status = CASE WHEN status IN ('sending', 'dead', 'cancelled') THEN 'sent' ELSE status END \
         WHERE batch_id = {batch_id} AND id IN ({ids})"
    );
    let sql = super::native_sql(tx, &sql);
    let mut q = sqlx::query(&sql);
    for (message_id, provider_id) in &pairs {
        q = q.bind(*message_id).bind(*provider_id);
    }
    q = q.bind(batch.attempt).bind(now).bind(&batch.id);
    for (message_id, _) in &pairs {
        q = q.bind(*message_id);
    }
    q.execute(&mut **tx).await?;
    // Accepted: each message counts as sent once (analytics).
    let ids: Vec<&str> = pairs.iter().map(|(m, _)| m.as_str()).collect();
    super::stats::record_accepted(tx, &ids, now).await
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
    let sql = super::native_sql(tx, &sql);
    let mut q = sqlx::query(&sql).bind(status).bind(now).bind(batch_id);
    for id in ids {
        q = q.bind(*id);
    }
    q.execute(&mut *tx).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str) -> ClaimedMessage {
        ClaimedMessage {
            id: id.into(),
            tenant_id: "t".into(),
            campaign_id: Some("c".into()),
            to_email: format!("{id}@example.com"),
            first_name: None,
            from_address: "hello@example.com".into(),
            subject: "s".into(),
            html: "x".repeat(1000),
            text_body: None,
            ..ClaimedMessage::default()
        }
    }

    #[test]
    fn requests_are_capped_by_count_and_by_bytes() {
        let ms: Vec<_> = (0..250).map(|i| message(&format!("m{i:03}"))).collect();
        fn render(ms: &[ClaimedMessage]) -> Vec<(&ClaimedMessage, String)> {
            ms.iter().map(|m| (m, serde_json::json!({ "id": m.id, "html": m.html }).to_string())).collect()
        }
        let by_count = chunk_by_size(render(&ms), usize::MAX);
        assert_eq!(by_count.iter().map(Vec::len).collect::<Vec<_>>(), vec![100, 100, 50]);
        let by_bytes = chunk_by_size(render(&ms[..10]), 3_500);
        assert_eq!(by_bytes.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 3, 1]);
        for c in &by_bytes {
            let body = request_body(&c.iter().map(|(_, j)| j.clone()).collect::<Vec<_>>(), false);
            assert!(body.len() <= 3_500 || c.len() == 1);
        }
        // One email larger than the cap still goes, alone.
        assert_eq!(chunk_by_size(render(&ms[..2]), 10).iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1]);
    }

    #[test]
    fn a_request_body_is_the_json_array_of_its_emails() {
        let emails = vec![r#"{"a":1}"#.to_owned(), r#"{"b":2}"#.to_owned()];
        let values: Vec<serde_json::Value> = emails.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        assert_eq!(request_body(&emails, false), serde_json::to_string(&values).unwrap());
        assert_eq!(request_body(&emails[..1], true), emails[0]);
    }
}
