//! Queueing mail: a campaign's audience resolved and written as outbox rows in
//! one statement, a transactional email, and counting an audience without
//! sending. A request's `Idempotency-Key` is reserved in the same transaction.

use sqlx::Row;

use super::filter::{bind_values, compile, SqlValue};
use super::{Backend, Placeholders, Store, StoreError, WriteTx};
use crate::domain::{SegmentFilter, Targeting, TenantId};

/// Priority lanes of the outbox: lower is claimed first.
pub const PRIORITY_TRANSACTIONAL: i64 = 0;
pub const PRIORITY_CAMPAIGN: i64 = 1;

pub struct NewCampaign {
    pub id: String,
    pub subject: String,
    pub html: String,
    pub text: Option<String>,
    /// The template id and version the content is a copy of (rendered as a template).
    pub template: Option<(String, i64)>,
    /// The send's `variables` (a JSON object), for a template.
    pub variables: Option<String>,
    pub from_address: String,
    pub reply_to: Option<String>,
    pub targeting: Targeting,
    /// Only contacts subscribed to this topic (and the campaign keeps it, for the claim's check).
    pub topic_id: Option<String>,
    /// Epoch ms before which nothing is sent.
    pub scheduled_at: Option<i64>,
}

pub struct NewSingle {
    pub id: String,
    pub to_email: String,
    pub first_name: Option<String>,
    pub contact_id: Option<String>,
    pub from_address: String,
    pub subject: String,
    pub html: String,
    pub text: Option<String>,
    pub template: Option<(String, i64)>,
    pub variables: Option<String>,
    /// Carry one-click unsubscribe headers, as campaign mail does.
    pub list_unsubscribe: bool,
    pub reply_to: Option<String>,
    pub tags_json: Option<String>,
    /// The automation rule that sends this message, if one does.
    pub automation_id: Option<String>,
    /// The topic the message is about (an automation's email): its contact's
    /// choice on it is checked again at claim, and one-click leaves it.
    pub topic_id: Option<String>,
}

/// A request's `Idempotency-Key` and the fingerprint of what it asked.
#[derive(Clone, Copy, Debug)]
pub struct RequestKey<'a> {
    pub key: &'a str,
    pub request_hash: &'a str,
}

/// A key seen before: the request is not carried out again.
#[derive(Debug)]
pub enum KeyRepeat {
    /// Same request: answer what was answered then.
    Replay { status: u16, body: String },
    /// The key was used for a different request.
    Mismatch,
}

pub enum EnqueueOutcome {
    Enqueued { recipients: u64, response: String },
    NoRecipients,
    Repeat(KeyRepeat),
}

/// `FROM ... WHERE ...` selecting a campaign's audience as contacts `c`: the
/// tenant (`$1`) subscribed (so not pending), unsuppressed contacts matching the targeting, whose
/// values are bound from `$first` on, and, when `topic` names the parameter
/// holding a topic's id, subscribed to that topic. One definition for
/// counting and for enqueueing.
fn audience(
    backend: Backend,
    targeting: &Targeting,
    topic: Option<usize>,
    first: usize,
    now: i64,
) -> (String, Vec<SqlValue>) {
    // Each join matches at most one row per contact (its primary or unique key),
    // so no contact is counted or queued twice; joins let the planner start from
    // the small side (a tag's index) rather than scan every contact.
    let param = first;
    let (join, values) = match targeting {
        Targeting::All => ("WHERE".to_owned(), Vec::new()),
        Targeting::Tag(t) => (
            format!("JOIN contact_tags t ON t.contact_id = c.id AND t.tenant_id = $1 AND t.tag = ${param} WHERE"),
            vec![SqlValue::Text(t.clone())],
        ),
        Targeting::Segment(s) => (
            format!("JOIN segment_members m ON m.contact_id = c.id AND m.segment_id = ${param} WHERE"),
            vec![SqlValue::Text(s.clone())],
        ),
        Targeting::Resume(old) => (
            format!(
                "JOIN messages om ON om.contact_id = c.id AND om.campaign_id = ${param} \
                 AND om.status IN ('queued', 'paused', 'cancelled', 'dead') WHERE"
            ),
            vec![SqlValue::Text(old.clone())],
        ),
        Targeting::Filter { filter, .. } => {
            let mut values = Vec::new();
            let sql = compile(filter, backend, &mut Placeholders::after(first - 1), &mut values, now);
            (format!("WHERE {sql} AND"), values)
        }
    };
    let topic = match topic {
        Some(n) => {
            format!(" AND {} = 'subscribed'", super::topics::topic_state_sql("c.id", "c.tenant_id", &format!("${n}")))
        }
        None => String::new(),
    };
    let sql = format!(
        "FROM contacts c {join} c.tenant_id = $1 AND c.status = 'subscribed' \
         AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.tenant_id = c.tenant_id AND s.email_normalized = c.email_normalized){topic}"
    );
    (sql, values)
}

impl Store {
    /// Writes the campaign and one queued message per recipient in one transaction.
    /// The audience is resolved by a single `INSERT ... SELECT`, so it never passes
    /// through this process. `respond` builds the response body from the recipient
    /// count; it is stored with the idempotency key in the same transaction.
    pub async fn enqueue_campaign(
        &self,
        tenant_id: &TenantId,
        c: &NewCampaign,
        key: Option<RequestKey<'_>>,
        respond: impl FnOnce(u64) -> String,
    ) -> Result<EnqueueOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        if let Some(repeat) = reserve_key(&mut tx, tenant_id, key, now).await? {
            tx.rollback().await?;
            return Ok(EnqueueOutcome::Repeat(repeat));
        }
        sqlx::query(
            "INSERT INTO campaigns (id, tenant_id, subject, html, text_body, from_address, reply_to, targeting, recipient_count, created_at, scheduled_at, \
               template_id, template_version, variables, topic_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&c.id)
        .bind(tenant_id)
        .bind(&c.subject)
        .bind(&c.html)
        .bind(&c.text)
        .bind(&c.from_address)
        .bind(&c.reply_to)
        .bind(c.targeting.to_json())
        .bind(now)
        .bind(c.scheduled_at)
        .bind(c.template.as_ref().map(|t| t.0.as_str()))
        .bind(c.template.as_ref().map(|t| t.1))
        .bind(&c.variables)
        .bind(&c.topic_id)
        .execute(&mut *tx)
        .await?;

        if let Targeting::Resume(old) = &c.targeting {
            // The earlier campaign's unsent rows stop here, in this transaction,
            // so no recipient can be mailed by both campaigns: its queued rows,
            // and its dead letters too (a later retry of one would send twice).
            sqlx::query(
                "UPDATE messages SET status = 'cancelled', updated_at = $3 \
                 WHERE tenant_id = $1 AND campaign_id = $2 AND status IN ('queued', 'paused', 'dead')",
            )
            .bind(tenant_id)
            .bind(old)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        // The topic, when there is one, is `$6`; the targeting's values follow it.
        let topic = c.topic_id.as_ref().map(|_| 6);
        let (audience, values) = audience(self.backend, &c.targeting, topic, 6 + usize::from(topic.is_some()), now);
        let sql = format!(
            "INSERT INTO messages (id, tenant_id, campaign_id, contact_id, to_email, first_name, priority, status, due_at, attempts, created_at, updated_at) \
             SELECT {id}, c.tenant_id, $2, c.id, c.email, c.first_name, {PRIORITY_CAMPAIGN}, 'queued', $4, 0, $3, $3 {audience}",
            // Rows are numbered, and so inserted, in contact order: then every
            // index of `messages` is appended to (ids ascend with the number,
            // `(campaign_id, contact_id)` with the contact), instead of a
            // million inserts at random places of `messages_once_per_recipient`.
            id = self.sql_random_id("$5", "ROW_NUMBER() OVER (ORDER BY c.id)"),
        );
        let insert = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(&c.id)
            .bind(now)
            .bind(c.scheduled_at.unwrap_or(now))
            .bind(super::time_prefix());
        let insert = match &c.topic_id {
            Some(topic) => insert.bind(topic),
            None => insert,
        };
        let recipients = bind_values(insert, &values).execute(&mut *tx).await?.rows_affected();
        if recipients == 0 {
            tx.rollback().await?;
            return Ok(EnqueueOutcome::NoRecipients);
        }
        sqlx::query("UPDATE campaigns SET recipient_count = $2 WHERE id = $1")
            .bind(&c.id)
            .bind(i64::try_from(recipients).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        let response = respond(recipients);
        if let Some(key) = key {
            complete_key(&mut tx, tenant_id, key.key, 202, &response).await?;
        }
        tx.commit().await?;
        Ok(EnqueueOutcome::Enqueued { recipients, response })
    }

    /// How many contacts a send with this targeting would reach now. Counted as
    /// the targeting's members (an index-only count) minus those members that are
    /// unsubscribed, bounced, complained or suppressed (a small set, found through
    /// its own indexes), rather than by checking every member.
    pub async fn audience_count(&self, tenant_id: &TenantId, targeting: &Targeting) -> Result<i64, sqlx::Error> {
        self.audience_count_in(tenant_id, targeting, None).await
    }

    /// [`Store::audience_count`] of the contacts subscribed to `topic`, when one is given.
    pub async fn audience_count_in(
        &self,
        tenant_id: &TenantId,
        targeting: &Targeting,
        topic: Option<&str>,
    ) -> Result<i64, sqlx::Error> {
        if let Some(topic) = topic {
            // Counted as the enqueue selects: the same statement, the topic's
            // choices probed per candidate by their primary key.
            let (audience, values) = audience(self.backend, targeting, Some(2), 3, self.now_ms());
            let sql = format!("SELECT COUNT(*) {audience}");
            let row = bind_values(sqlx::query(&sql).bind(tenant_id).bind(topic), &values).fetch_one(&self.pool).await?;
            return row.try_get(0);
        }
        let (members, value, member_of) = match targeting {
            Targeting::All => {
                ("SELECT COUNT(*) FROM contacts WHERE tenant_id = $1 AND $2 = $2", String::new(), "$2 = $2")
            }
            // Maintained by triggers (migration 0010): one row, not a walk of the tag's index.
            Targeting::Tag(t) => (
                "SELECT COALESCE(MAX(members), 0) FROM tag_counts WHERE tenant_id = $1 AND tag = $2",
                t.clone(),
                "EXISTS (SELECT 1 FROM contact_tags m WHERE m.contact_id = c.id AND m.tag = $2)",
            ),
            Targeting::Segment(sid) => (
                "SELECT COUNT(*) FROM segment_members WHERE segment_id = $2 AND $1 = $1",
                sid.clone(),
                "EXISTS (SELECT 1 FROM segment_members m WHERE m.segment_id = $2 AND m.contact_id = c.id)",
            ),
            Targeting::Resume(_) => {
                let (audience, values) = audience(self.backend, targeting, None, 2, self.now_ms());
                let sql = format!("SELECT COUNT(*) {audience}");
                let row = bind_values(sqlx::query(&sql).bind(tenant_id), &values).fetch_one(&self.pool).await?;
                return row.try_get(0);
            }
            Targeting::Filter { filter, .. } => return self.filter_count(tenant_id, filter).await,
        };
        let members: i64 = sqlx::query_scalar(members).bind(tenant_id).bind(&value).fetch_one(&self.pool).await?;
        // Two disjoint sets, each driven from its own small index (unmailable
        // contacts; the suppression list) and probed for membership, written so
        // that no planner, with or without statistics, starts from the members.
        let unmailable: i64 = sqlx::query_scalar(&format!(
            "SELECT (SELECT COUNT(*) FROM contacts c WHERE c.tenant_id = $1 AND c.status <> 'subscribed' AND {member_of}) \
               + (SELECT COUNT(*) FROM suppressions s WHERE s.tenant_id = $1 AND EXISTS ( \
                    SELECT 1 FROM contacts c WHERE c.tenant_id = s.tenant_id \
                      AND c.email_normalized = s.email_normalized AND c.status = 'subscribed' AND {member_of}))"
        ))
        .bind(tenant_id)
        .bind(&value)
        .fetch_one(&self.pool)
        .await?;
        Ok(members - unmailable)
    }

    /// A filter's audience, counted like a tag's: the contacts matching it
    /// (one pass over the tenant's contacts) minus those of them that are
    /// unmailable or suppressed (found from those small sets), so the count
    /// does not probe the suppression list once per contact.
    async fn filter_count(&self, tenant_id: &TenantId, filter: &SegmentFilter) -> Result<i64, sqlx::Error> {
        let mut values = Vec::new();
        // One numbering, used by both statements.
        let member_of = compile(filter, self.backend, &mut Placeholders::after(1), &mut values, self.now_ms());
        let sql = format!("SELECT COUNT(*) FROM contacts c WHERE c.tenant_id = $1 AND {member_of}");
        let members: i64 =
            bind_values(sqlx::query(&sql).bind(tenant_id), &values).fetch_one(&self.pool).await?.try_get(0)?;
        let sql = format!(
            "SELECT (SELECT COUNT(*) FROM contacts c WHERE c.tenant_id = $1 AND c.status <> 'subscribed' AND {member_of}) \
               + (SELECT COUNT(*) FROM suppressions s WHERE s.tenant_id = $1 AND EXISTS ( \
                    SELECT 1 FROM contacts c WHERE c.tenant_id = s.tenant_id \
                      AND c.email_normalized = s.email_normalized AND c.status = 'subscribed' AND {member_of}))"
        );
        let unmailable: i64 =
            bind_values(sqlx::query(&sql).bind(tenant_id), &values).fetch_one(&self.pool).await?.try_get(0)?;
        Ok(members - unmailable)
    }

    /// Contacts of the tenant matching a filter, whatever their status (the
    /// first `limit` by id), and how many there are: a dynamic segment's members now.
    pub async fn filter_members(
        &self,
        tenant_id: &TenantId,
        filter: &SegmentFilter,
        limit: i64,
    ) -> Result<(i64, Vec<super::ContactRow>), sqlx::Error> {
        self.filter_members_after(tenant_id, filter, "", limit).await
    }

    /// One page of the contacts matching a filter: those after the contact id
    /// `after` ("" from the start), at most `limit` by id, and how many match in all.
    pub async fn filter_members_after(
        &self,
        tenant_id: &TenantId,
        filter: &SegmentFilter,
        after: &str,
        limit: i64,
    ) -> Result<(i64, Vec<super::ContactRow>), sqlx::Error> {
        let now = self.now_ms();
        let mut values = Vec::new();
        let member_of = compile(filter, self.backend, &mut Placeholders::after(1), &mut values, now);
        let sql = format!("SELECT COUNT(*) FROM contacts c WHERE c.tenant_id = $1 AND {member_of}");
        let count: i64 =
            bind_values(sqlx::query(&sql).bind(tenant_id), &values).fetch_one(&self.pool).await?.try_get(0)?;
        // The page's statement binds `after` second: the filter's placeholders follow it.
        let mut values = Vec::new();
        let member_of = compile(filter, self.backend, &mut Placeholders::after(2), &mut values, now);
        let sql = format!(
            "SELECT {} FROM contacts c WHERE c.tenant_id = $1 AND c.id > $2 AND {member_of} ORDER BY c.id LIMIT {}",
            super::contacts::CONTACT_COLUMNS,
            limit.clamp(0, 10_000)
        );
        let rows = bind_values(sqlx::query(&sql).bind(tenant_id).bind(after), &values).fetch_all(&self.pool).await?;
        let contacts = rows
            .iter()
            .map(<super::ContactRow as sqlx::FromRow<sqlx::any::AnyRow>>::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((count, contacts))
    }

    /// Queues one transactional message ahead of campaign mail.
    pub async fn enqueue_single(
        &self,
        tenant_id: &TenantId,
        m: &NewSingle,
        key: Option<RequestKey<'_>>,
        response: &str,
    ) -> Result<Option<KeyRepeat>, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        if let Some(repeat) = reserve_key(&mut tx, tenant_id, key, now).await? {
            tx.rollback().await?;
            return Ok(Some(repeat));
        }
        insert_single(&mut tx, tenant_id, m, now, false).await?;
        if let Some(key) = key {
            complete_key(&mut tx, tenant_id, key.key, 202, response).await?;
        }
        tx.commit().await?;
        Ok(None)
    }
}

impl Store {
    /// Queues a test send's messages (all or none), ahead of campaign mail
    /// like transactional mail. They are marked `test` and their `sent` figure
    /// starts as counted (`sent_counted = 2`: neither the outbox nor
    /// `email.sent` counts it again, see [`super::stats`]), and the events
    /// writer counts no other figure of theirs: a test is in no campaign's
    /// figures and no tenant's.
    pub async fn enqueue_test_send(&self, tenant_id: &TenantId, messages: &[NewSingle]) -> Result<(), sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        for m in messages {
            insert_single(&mut tx, tenant_id, m, now, true).await?;
        }
        tx.commit().await
    }
}

/// Writes one transactional message, due now, inside `tx` (a test send's when `test`).
pub(super) async fn insert_single(
    tx: &mut WriteTx,
    tenant_id: &TenantId,
    m: &NewSingle,
    now: i64,
    test: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO messages (id, tenant_id, campaign_id, contact_id, to_email, first_name, priority, status, due_at, attempts, \
           from_address, subject, html, text_body, reply_to, tags, created_at, updated_at, \
           template_id, template_version, variables, list_unsubscribe, automation_id, test, sent_counted, topic_id) \
         VALUES ($1, $2, NULL, $3, $4, $5, {PRIORITY_TRANSACTIONAL}, 'queued', $6, 0, $7, $8, $9, $10, $11, $12, $6, $6, \
           $13, $14, $15, $16, $17, $18, $19, $20)"
    ))
    .bind(&m.id)
    .bind(tenant_id)
    .bind(&m.contact_id)
    .bind(&m.to_email)
    .bind(&m.first_name)
    .bind(now)
    .bind(&m.from_address)
    .bind(&m.subject)
    .bind(&m.html)
    .bind(&m.text)
    .bind(&m.reply_to)
    .bind(&m.tags_json)
    .bind(m.template.as_ref().map(|t| t.0.as_str()))
    .bind(m.template.as_ref().map(|t| t.1))
    .bind(&m.variables)
    .bind(i64::from(m.list_unsubscribe))
    .bind(&m.automation_id)
    .bind(i64::from(test))
    // A test's `sent` starts as counted: neither the outbox nor `email.sent` counts it.
    .bind(if test { 2_i64 } else { 0 })
    .bind(&m.topic_id)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// Reserves an `Idempotency-Key` inside the transaction that carries out the
/// request, so the key and the request's effects commit (or vanish) together:
/// a concurrent request with the same key waits on the key's row until this
/// transaction ends (PostgreSQL's unique index; SQLite's single writer), then
/// finds the stored answer. There is no window in which two requests with one
/// key can both act, however slow the first.
async fn reserve_key(
    tx: &mut WriteTx,
    tenant_id: &TenantId,
    key: Option<RequestKey<'_>>,
    now: i64,
) -> Result<Option<KeyRepeat>, sqlx::Error> {
    let Some(key) = key else { return Ok(None) };
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, key, request_hash, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, key) DO NOTHING",
    )
    .bind(tenant_id)
    .bind(key.key)
    .bind(key.request_hash)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    let (hash, status, body): (String, Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant_id)
    .bind(key.key)
    .fetch_one(&mut **tx)
    .await?;
    if hash != key.request_hash {
        return Ok(Some(KeyRepeat::Mismatch));
    }
    match (status, body) {
        (Some(status), Some(body)) => {
            Ok(Some(KeyRepeat::Replay { status: u16::try_from(status).unwrap_or(200), body }))
        }
        // A key reserved by an earlier version outside a transaction, never
        // completed: this request carries it out.
        _ => Ok(None),
    }
}

async fn complete_key(
    tx: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    key: &str,
    status: i64,
    body: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET response_status = $3, response_body = $4 WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant_id)
    .bind(key)
    .bind(status)
    .bind(body)
    .execute(&mut *tx)
    .await
    .map(|_| ())
}
