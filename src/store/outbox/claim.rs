//! Claiming: queued messages into provider requests (batches) recorded with
//! their idempotency keys under a fresh claim token before anything is sent.
//! Batches due again (retries, lost leases) are [`super::due`]'s.

use std::collections::{HashMap, HashSet};

use sqlx::FromRow;

use super::turns::{self, Head, Turn, HEAD};
use super::{BatchShape, ClaimedBatch, OutboundBatch, MAX_BATCH};
use crate::domain::outbox_policy::{chunk_by_size, request_body, HOLD_MS};
use crate::domain::{hash_key, ClaimedMessage, RenderClaimed};
use crate::store::{placeholders, Backend, Store, WriteTx};

/// Whether message `m` may no longer be mailed. A campaign's: its contact is
/// gone, unsubscribed, pending (double opt-in not confirmed: any status but
/// `subscribed` blocks) or suppressed, or its campaign targets a topic the
/// contact is not subscribed to (any more: a choice made after the enqueue
/// counts; a topic deleted since stops the mail). Any message about a topic
/// of its own (an automation's email, `m.topic_id`): the same, on that
/// topic. Other mail alone (transactional) is never blocked here. The fan-out
/// pays one null test for the second case: a campaign's message is judged by
/// the first, as before messages had topics of their own.
///
/// `campaign_topic`: whether the claim's campaign targets a topic (all the
/// messages of a claim are of one campaign, or one message alone); without
/// one, its messages are spared the campaign-row probe.
fn blocked(campaign_topic: bool) -> String {
    let contact_gone = "NOT EXISTS ( \
           SELECT 1 FROM contacts c WHERE c.id = m.contact_id AND c.status = 'subscribed' \
             AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.tenant_id = c.tenant_id AND s.email_normalized = c.email_normalized))";
    let left_campaign_topic = if campaign_topic {
        format!(
            " OR EXISTS (SELECT 1 FROM campaigns cp \
               WHERE cp.id = m.campaign_id AND cp.topic_id IS NOT NULL AND {} <> 'subscribed')",
            crate::store::topics::topic_state_sql("m.contact_id", "m.tenant_id", "cp.topic_id")
        )
    } else {
        String::new()
    };
    format!(
        "CASE WHEN m.campaign_id IS NOT NULL AND ({contact_gone}{left_campaign_topic}) THEN 1 \
         WHEN m.topic_id IS NULL THEN 0 \
         WHEN {contact_gone} OR {} <> 'subscribed' THEN 1 \
       ELSE 0 END",
        crate::store::topics::topic_state_sql("m.contact_id", "m.tenant_id", "m.topic_id"),
    )
}

impl Store {
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
    /// [`Store::claim_new_batch`] says, and charges its tenant the requests:
    /// [`Store::read_claim`], `render`, then [`Store::commit_claim`].
    pub async fn claim_turn(
        &self,
        turn: &Turn,
        lease_ms: i64,
        max_batches: usize,
        max_bytes: usize,
        render: &impl RenderClaimed,
    ) -> anyhow::Result<ClaimedBatch> {
        let ahead = self.read_claim(turn, max_batches, max_bytes, None).await?;
        let answers = render.render_claimed(ahead.messages()).await?;
        self.commit_claim(turn, lease_ms, max_bytes, ahead, answers).await
    }

    /// What a claim of `turn` would take, read outside any transaction, to be
    /// rendered before [`Store::commit_claim`]: nothing when its campaign is
    /// held. `after`, for a campaign's claim, starts the read after that
    /// message: another claim of the same campaign, under way, has read up to
    /// it (see [`ClaimAhead::last_read`]).
    pub async fn read_claim(
        &self,
        turn: &Turn,
        max_batches: usize,
        max_bytes: usize,
        after: Option<&str>,
    ) -> Result<ClaimAhead, sqlx::Error> {
        let head = &turn.head;
        if head.held() {
            return Ok(ClaimAhead { messages: None, campaign: false });
        }
        let mut conn = self.pool.acquire().await?;
        let messages = self.claimable(&mut conn, &turn.tenant_id, head, max_batches, max_bytes, after).await?;
        Ok(ClaimAhead { messages: Some(messages), campaign: !head.single() })
    }

    /// Claims, in one transaction, what `ahead` read of `turn` and `answers`
    /// rendered of it (in its order): each message still queued and still
    /// allowed to be mailed goes into a request recorded with its key and
    /// claim token; the tenant is charged the requests.
    pub async fn commit_claim(
        &self,
        turn: &Turn,
        lease_ms: i64,
        max_bytes: usize,
        ahead: ClaimAhead,
        answers: Vec<Result<String, String>>,
    ) -> anyhow::Result<ClaimedBatch> {
        let ahead = ahead.messages;
        let mut renders: HashMap<String, Result<String, String>> =
            ahead.iter().flatten().map(|m| m.id.clone()).zip(answers).collect();
        // Whether each may still be mailed is checked here (a message found
        // blocked now was rendered for nothing: rare).
        let head = &turn.head;
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
        let Some(ahead) = ahead else {
            // It was held when read, and no longer is: nothing was rendered.
            tx.commit().await?;
            return Ok(ClaimedBatch { suppressed: 0, batches: Vec::new() });
        };
        // Of the messages read above, those still queued (and not locked by
        // another claim) whose contact may no longer be mailed: suppressed now.
        let ids: Vec<&str> = ahead.iter().map(|m| m.id.as_str()).collect();
        let blocked = self.suppress_blocked(&mut tx, &ids, head.campaign_topic.is_some()).await?;
        // A failed render is a dead letter, or pauses its campaign when its
        // renders keep failing; the others go, but for any not rendered above
        // (it came to the head of the queue meanwhile).
        let outcomes: Vec<(&ClaimedMessage, Result<String, String>)> = ahead
            .iter()
            .filter(|m| !blocked.contains(&m.id))
            .filter_map(|m| Some((m, renders.remove(&m.id)?)))
            .collect();
        let rendered: Vec<(&ClaimedMessage, String)> =
            outcomes.iter().filter_map(|(m, r)| Some((*m, r.as_ref().ok()?.clone()))).collect();
        let mut claimed: HashSet<&str> = HashSet::with_capacity(rendered.len());
        let mut batches = Vec::new();
        for chunk in chunk_by_size(rendered, max_bytes) {
            let batch_id = crate::domain::new_id();
            // Each request's messages, if still queued (not taken by another
            // claim, cancelled or paused meanwhile): rarely fewer than rendered.
            let taken = self.take_for_batch(&mut tx, &chunk_ids(&chunk), &batch_id).await?;
            let chunk: Vec<(&ClaimedMessage, String)> =
                chunk.into_iter().filter(|(m, _)| taken.contains(&m.id)).collect();
            if chunk.is_empty() {
                continue;
            }
            claimed.extend(chunk.iter().map(|(m, _)| m.id.as_str()));
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
            batches.push(OutboundBatch {
                id: batch_id,
                tenant_id,
                idempotency_key,
                shape: BatchShape::new(campaign_id.is_none(), single),
                payload,
                attempt: 1,
                claim_token: token,
                uncertain_since: None,
                message_ids: chunk.into_iter().map(|(m, _)| m.id.clone()).collect(),
            });
        }
        // The renders of what this claim holds (in the claim's order), counted
        // for its campaign: those sent, and the failures still queued.
        let outcomes: Vec<(&ClaimedMessage, Option<String>)> = outcomes
            .into_iter()
            .filter_map(|(m, r)| match r {
                Ok(_) => claimed.contains(m.id.as_str()).then_some((m, None)),
                Err(reason) => Some((m, Some(reason))),
            })
            .collect();
        self.record_renders(&mut tx, campaign_id.as_deref(), &outcomes).await?;
        turns::charge(&mut tx, turn, batches.len()).await?;
        tx.commit().await?;
        Ok(ClaimedBatch { suppressed: blocked.len() as u64, batches })
    }

    /// The messages a claim headed by `head` takes, to be rendered: that one
    /// alone (transactional mail, and messages split out of a rejected
    /// batch), or as many of its campaign as the claim's requests can carry.
    /// Each row carries only its own columns (a contact's only when a
    /// template may use them); what they share, the tenant's and the
    /// campaign's, is read once.
    async fn claimable(
        &self,
        conn: &mut sqlx::AnyConnection,
        tenant_id: &str,
        head: &Head,
        max_batches: usize,
        max_bytes: usize,
        after: Option<&str>,
    ) -> Result<Vec<ClaimedMessage>, sqlx::Error> {
        let shared: Option<Shared> = sqlx::query_as(
            "SELECT tn.name AS tenant_name, tn.locale AS tenant_locale, tn.unsubscribe_footer, cp.from_address, cp.subject, cp.html, \
               cp.text_body, cp.reply_to, cp.template_id, cp.variables, \
               LENGTH(cp.html) + COALESCE(LENGTH(cp.text_body), 0) + LENGTH(cp.subject) AS size \
             FROM tenants tn LEFT JOIN campaigns cp ON cp.id = $2 AND cp.tenant_id = tn.id WHERE tn.id = $1",
        )
        .bind(tenant_id)
        .bind(head.campaign_id.as_deref())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(shared) = shared else { return Ok(Vec::new()) };
        let (scope, scope_value, after, limit) = match &head.campaign_id {
            Some(c) if !head.single() => {
                let scope = match after {
                    Some(_) => "m.campaign_id = $2 AND m.solo = 0 AND m.id > $3",
                    None => "m.campaign_id = $2 AND m.solo = 0",
                };
                // Take no more than the requests can carry: a large body means
                // fewer emails per claim, so memory stays bounded.
                let per_email = usize::try_from(shared.size.unwrap_or(0)).unwrap_or(0).saturating_add(512);
                let by_bytes = (max_batches.max(1).saturating_mul(max_bytes) / per_email).max(1);
                let by_count = usize::try_from(MAX_BATCH).unwrap_or(100).saturating_mul(max_batches.max(1));
                (scope, c.as_str(), after, by_count.min(by_bytes))
            }
            _ => ("m.id = $2", head.id.as_str(), None, 1),
        };
        // Campaign messages are its template or not; a message alone may be either.
        let contact = match shared.template_id.is_some() || head.single() {
            true => "ct.last_name, ct.attributes FROM messages m LEFT JOIN contacts ct ON ct.id = m.contact_id",
            false => "CAST(NULL AS TEXT) AS last_name, CAST(NULL AS TEXT) AS attributes FROM messages m",
        };
        let now = self.now_ms();
        if let (Some(c), false) = (&head.campaign_id, head.single()) {
            // A campaign's messages differ by recipient alone, but for those
            // a resume pinned to the content they were claimed with: only
            // what varies is read (a quarter of the columns), unless one has
            // content of its own.
            let sql = format!(
                "SELECT m.id, m.to_email, m.first_name, \
                   CASE WHEN COALESCE(m.from_address, m.subject, m.html, m.text_body, m.reply_to, m.tags, \
                     m.template_id, m.variables) IS NULL THEN 0 ELSE 1 END AS own, \
                   {contact} WHERE {scope} AND m.status = 'queued' AND m.due_at <= $1 ORDER BY m.id LIMIT {limit}"
            );
            let mut read = sqlx::query_as::<_, CampaignRecipient>(&sql).bind(now).bind(scope_value);
            if let Some(after) = after {
                read = read.bind(after);
            }
            let recipients = read.fetch_all(&mut *conn).await?;
            if recipients.iter().all(|r| r.own == 0) {
                return Ok(recipients.into_iter().map(|r| r.with(tenant_id, c, &shared)).collect());
            }
        }
        let sql = format!(
            "SELECT m.id, m.tenant_id, m.campaign_id, m.to_email, m.first_name, m.from_address, m.subject, m.html, \
               m.text_body, m.reply_to, m.tags, m.template_id, m.variables, \
               CASE WHEN m.campaign_id IS NOT NULL OR m.list_unsubscribe = 1 THEN 1 ELSE 0 END AS list_unsubscribe, \
               {contact} WHERE {scope} AND m.status = 'queued' AND m.due_at <= $1 ORDER BY m.id LIMIT {limit}"
        );
        let mut read = sqlx::query_as::<_, Queued>(&sql).bind(now).bind(scope_value);
        if let Some(after) = after {
            read = read.bind(after);
        }
        let rows = read.fetch_all(&mut *conn).await?;
        Ok(rows.into_iter().map(|q| q.with(&shared)).collect())
    }

    /// Of messages `ids`, those whose contact may no longer be mailed, if
    /// still queued (and not locked by another claim, on PostgreSQL), are
    /// suppressed; returns their ids (rarely any).
    async fn suppress_blocked(
        &self,
        tx: &mut WriteTx,
        ids: &[&str],
        campaign_topic: bool,
    ) -> Result<HashSet<String>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let sql = self.still_queued(ids, &format!(" AND {} = 1", blocked(campaign_topic)), " RETURNING id");
        let sql = crate::store::native_sql(tx, &sql);
        let now = tx.now;
        let mut q = sqlx::query_scalar::<_, String>(&sql).bind("suppressed").bind(now).bind(None::<&str>).bind(now);
        for id in ids {
            q = q.bind(*id);
        }
        Ok(q.fetch_all(&mut **tx).await?.into_iter().collect())
    }

    /// Of messages `ids`, those still queued (and not locked by another claim,
    /// on PostgreSQL) become batch `batch_id`'s, `sending`; returns their ids.
    /// Counted, not returned row by row: all of them, but for a race.
    async fn take_for_batch(
        &self,
        tx: &mut WriteTx,
        ids: &[&str],
        batch_id: &str,
    ) -> Result<HashSet<String>, sqlx::Error> {
        let sql = self.still_queued(ids, "", "");
        let sql = crate::store::native_sql(tx, &sql);
        let now = tx.now;
        let mut q = sqlx::query(&sql).bind("sending").bind(now).bind(Some(batch_id)).bind(now);
        for id in ids {
            q = q.bind(*id);
        }
        let taken = q.execute(&mut **tx).await?.rows_affected();
        if usize::try_from(taken).is_ok_and(|n| n == ids.len()) {
            return Ok(ids.iter().map(|id| (*id).to_owned()).collect());
        }
        let mine: Vec<String> = sqlx::query_scalar("SELECT id FROM messages WHERE batch_id = $1")
            .bind(batch_id)
            .fetch_all(&mut **tx)
            .await?;
        Ok(mine.into_iter().collect())
    }

    /// `UPDATE` of messages `$5…` (as many as `ids`) to status `$1` at `$2`
    /// (with batch `$3`, if not null) where still queued and due by `$4`, and
    /// `condition`. Found by id alone: `status IN ('queued', '')` (status is
    /// never empty) rather than `= 'queued'`, so that PostgreSQL cannot plan
    /// it with an index of queued messages, which it would with statistics
    /// from before a large enqueue (and then read every queued message).
    fn still_queued(&self, ids: &[&str], condition: &str, returning: &str) -> String {
        // Numbered in the order written: see `native_sql`.
        format!(
            "UPDATE messages SET status = $1, updated_at = $2, batch_id = COALESCE($3, batch_id) \
             WHERE id IN (SELECT m.id FROM messages m WHERE m.due_at <= $4 AND m.id IN ({}) \
               AND m.status IN ('queued', ''){condition}{}){returning}",
            placeholders(5, ids.len()),
            self.skip_locked("m")
        )
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

/// What a claim would take, as [`Store::read_claim`] read it: the messages to
/// render (none when its campaign was held).
pub struct ClaimAhead {
    messages: Option<Vec<ClaimedMessage>>,
    /// Whether they are some of a campaign's, in order of id.
    campaign: bool,
}

impl ClaimAhead {
    /// Messages of a campaign, read in this order, for tests of what follows a claim.
    #[cfg(test)]
    pub fn of_campaign(messages: Vec<ClaimedMessage>) -> Self {
        ClaimAhead { messages: Some(messages), campaign: true }
    }

    /// The messages to render, in the claim's order.
    pub fn messages(&self) -> &[ClaimedMessage] {
        self.messages.as_deref().unwrap_or_default()
    }

    /// For a campaign's claim, the last message read: another claim of the
    /// same campaign may read after it meanwhile, and take none of these.
    pub fn last_read(&self) -> Option<&str> {
        self.messages.as_ref().filter(|_| self.campaign)?.last().map(|m| m.id.as_str())
    }

    /// Whether rendering them runs a tenant's template (in a render worker).
    pub fn templated(&self) -> bool {
        self.messages().iter().any(|m| m.templated == 1)
    }
}

/// What every message of a claim shares: its tenant's name, language and
/// footer setting, and its campaign's content (none for transactional mail).
#[derive(FromRow)]
struct Shared {
    tenant_name: String,
    tenant_locale: String,
    unsubscribe_footer: i64,
    from_address: Option<String>,
    subject: Option<String>,
    html: Option<String>,
    text_body: Option<String>,
    reply_to: Option<String>,
    template_id: Option<String>,
    variables: Option<String>,
    /// Bytes of the campaign's content.
    size: Option<i64>,
}

/// A queued message's own columns, as a claim reads them.
#[derive(FromRow)]
struct Queued {
    id: String,
    tenant_id: String,
    campaign_id: Option<String>,
    to_email: String,
    first_name: Option<String>,
    from_address: Option<String>,
    subject: Option<String>,
    html: Option<String>,
    text_body: Option<String>,
    reply_to: Option<String>,
    tags: Option<String>,
    template_id: Option<String>,
    variables: Option<String>,
    list_unsubscribe: i64,
    last_name: Option<String>,
    attributes: Option<String>,
}

impl Queued {
    /// The message with what it shares filled in where it has none of its own.
    fn with(self, shared: &Shared) -> ClaimedMessage {
        let or = |own: Option<String>, theirs: &Option<String>| own.or_else(|| theirs.clone());
        ClaimedMessage {
            templated: i64::from(self.template_id.is_some() || shared.template_id.is_some()),
            id: self.id,
            tenant_id: self.tenant_id,
            campaign_id: self.campaign_id,
            to_email: self.to_email,
            first_name: self.first_name,
            from_address: or(self.from_address, &shared.from_address).unwrap_or_default(),
            subject: or(self.subject, &shared.subject).unwrap_or_default(),
            html: or(self.html, &shared.html).unwrap_or_default(),
            text_body: or(self.text_body, &shared.text_body),
            reply_to: or(self.reply_to, &shared.reply_to),
            tags: self.tags,
            blocked: 0,
            last_name: self.last_name,
            attributes: self.attributes,
            tenant_name: shared.tenant_name.clone(),
            tenant_locale: shared.tenant_locale.clone(),
            unsubscribe_footer: shared.unsubscribe_footer,
            variables: or(self.variables, &shared.variables),
            list_unsubscribe: self.list_unsubscribe,
        }
    }
}

/// A campaign's queued message as a claim reads it when it has no content of
/// its own (`own` = 0): its recipient.
#[derive(FromRow)]
struct CampaignRecipient {
    id: String,
    to_email: String,
    first_name: Option<String>,
    own: i64,
    last_name: Option<String>,
    attributes: Option<String>,
}

impl CampaignRecipient {
    /// The message of `campaign` (of `tenant_id`) to this recipient.
    fn with(self, tenant_id: &str, campaign: &str, shared: &Shared) -> ClaimedMessage {
        Queued {
            id: self.id,
            tenant_id: tenant_id.to_owned(),
            campaign_id: Some(campaign.to_owned()),
            to_email: self.to_email,
            first_name: self.first_name,
            from_address: None,
            subject: None,
            html: None,
            text_body: None,
            reply_to: None,
            tags: None,
            template_id: None,
            variables: None,
            list_unsubscribe: 1,
            last_name: self.last_name,
            attributes: self.attributes,
        }
        .with(shared)
    }
}

/// The ids of a request's messages.
fn chunk_ids<'a>(chunk: &[(&'a ClaimedMessage, String)]) -> Vec<&'a str> {
    chunk.iter().map(|(m, _)| m.id.as_str()).collect()
}
