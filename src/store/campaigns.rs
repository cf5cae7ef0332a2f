//! Campaigns as their owner sees them: listing, status counts, and the
//! lifecycle (pause, resume, cancel, soft delete).

use sqlx::FromRow;

use super::{Store, WriteTx};
use crate::domain::TenantId;

#[derive(Clone, Debug, FromRow)]
pub struct CampaignRow {
    pub id: String,
    pub tenant_id: String,
    pub subject: String,
    pub from_address: String,
    pub reply_to: Option<String>,
    pub targeting: String,
    pub recipient_count: i64,
    pub created_at: i64,
    /// `paused` or `cancelled` when set by hand; otherwise the status follows from the messages.
    pub state: Option<String>,
    pub scheduled_at: Option<i64>,
    /// The template (and its version) the campaign's content was copied from.
    pub template_id: Option<String>,
    pub template_version: Option<i64>,
    /// Why it is paused: `render_failing` when the outbox paused it; `None` by hand.
    pub pause_reason: Option<String>,
    /// The topic the campaign targets: only contacts subscribed to it get its mail.
    pub topic_id: Option<String>,
}

/// A version of a campaign's template that a resume switches it to.
pub struct NewContent {
    pub version: i64,
    pub subject: String,
    pub html: String,
    pub text: Option<String>,
}

/// What a resume did.
#[derive(Debug, PartialEq, Eq)]
pub enum Resumed {
    Queued,
    /// Nothing: messages in recorded batches render a derived text part,
    /// which the new version (with a text part of its own) would change.
    TextPartInFlight {
        in_flight: i64,
    },
}

#[derive(Clone, Debug, FromRow)]
pub struct StatusCount {
    pub campaign_id: Option<String>,
    pub status: String,
    pub n: i64,
}

impl Store {
    pub async fn campaign(&self, tenant_id: &TenantId, id: &str) -> Result<Option<CampaignRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, tenant_id, subject, from_address, reply_to, targeting, recipient_count, created_at, state, scheduled_at, \
               template_id, template_version, pause_reason, topic_id \
             FROM campaigns WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Newest first (ids are time-ordered UUIDs).
    pub async fn campaigns(&self, tenant_id: &TenantId) -> Result<Vec<CampaignRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, tenant_id, subject, from_address, reply_to, targeting, recipient_count, created_at, state, scheduled_at, \
               template_id, template_version, pause_reason, topic_id \
             FROM campaigns WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY id DESC",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
    }

    /// Message counts per status for the tenant's campaigns (or one of them).
    pub async fn campaign_status_counts(
        &self,
        tenant_id: &TenantId,
        campaign_id: Option<&str>,
    ) -> Result<Vec<StatusCount>, sqlx::Error> {
        // Through the tenant's campaigns: messages are indexed by campaign.
        sqlx::query_as(
            "SELECT m.campaign_id, m.status, COUNT(*) AS n FROM campaigns cp JOIN messages m ON m.campaign_id = cp.id \
             WHERE cp.tenant_id = $1 AND ($2 = '' OR cp.id = $2) \
             GROUP BY m.campaign_id, m.status",
        )
        .bind(tenant_id)
        .bind(campaign_id.unwrap_or(""))
        .fetch_all(&self.pool)
        .await
    }

    /// Deletes a campaign as its owner sees it: hidden from listings, nothing
    /// more sent (queued messages and batches waiting for a retry are cancelled;
    /// a batch in flight is stopped at its next claim). Its messages and events
    /// stay, so late bounces and complaints still suppress and count.
    pub async fn delete_campaign(&self, tenant_id: &TenantId, id: &str) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        // The messages first, then the campaign (see `set_campaign_state`);
        // nothing is kept when there is no such campaign.
        stop_unsent(&mut tx, tenant_id, id, "cancelled", &["queued", "paused"], now).await?;
        let done =
            sqlx::query("UPDATE campaigns SET deleted_at = $3 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL")
                .bind(tenant_id)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Stops claiming a campaign's queued messages; in-flight batches finish.
    pub async fn pause_campaign(&self, tenant_id: &TenantId, id: &str) -> Result<(), sqlx::Error> {
        self.set_campaign_state(tenant_id, id, Some("paused"), &["queued"], "paused").await
    }

    /// Puts a paused campaign's messages back in the queue, with a fresh
    /// render tally (see [`crate::domain::render_failures`]). With `content`,
    /// a version of its template, the messages not yet claimed render that
    /// version; those already in a recorded batch keep the content they were
    /// claimed with, so a retry of the batch is byte-identical (the provider's
    /// idempotency key refuses a changed body).
    pub async fn resume_campaign(
        &self,
        tenant_id: &TenantId,
        id: &str,
        content: Option<&NewContent>,
    ) -> Result<Resumed, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        if let Some(c) = content {
            // In-flight messages keep the current content on their own rows
            // (a message's own content wins over its campaign's). A text part
            // that is absent (derived from the html) cannot be kept that way.
            let pinned: Option<(i64, i64)> = sqlx::query_as(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN m.text_body IS NULL AND cp.text_body IS NULL THEN 1 ELSE 0 END), 0) \
                 FROM messages m JOIN campaigns cp ON cp.id = m.campaign_id \
                 WHERE m.tenant_id = $1 AND m.campaign_id = $2 AND m.status = 'sending'",
            )
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let (in_flight, without_text) = pinned.unwrap_or((0, 0));
            if without_text > 0 && c.text.is_some() {
                tx.rollback().await?;
                return Ok(Resumed::TextPartInFlight { in_flight });
            }
            sqlx::query(
                "UPDATE messages SET subject = COALESCE(subject, (SELECT cp.subject FROM campaigns cp WHERE cp.id = $2)), \
                   html = COALESCE(html, (SELECT cp.html FROM campaigns cp WHERE cp.id = $2)), \
                   text_body = COALESCE(text_body, (SELECT cp.text_body FROM campaigns cp WHERE cp.id = $2)) \
                 WHERE tenant_id = $1 AND campaign_id = $2 AND status = 'sending'",
            )
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE campaigns SET subject = $3, html = $4, text_body = $5, template_version = $6 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant_id)
            .bind(id)
            .bind(&c.subject)
            .bind(&c.html)
            .bind(&c.text)
            .bind(c.version)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE campaigns SET state = NULL, pause_reason = NULL, render_counted = 0, render_failed = 0, \
               render_failed_in_a_row = 0 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let now = tx.now;
        stop_unsent(&mut tx, tenant_id, id, "queued", &["paused"], now).await?;
        tx.commit().await?;
        Ok(Resumed::Queued)
    }

    /// Cancels every message not yet handed to the provider, including those
    /// waiting to be retried after a failed attempt.
    pub async fn cancel_campaign(&self, tenant_id: &TenantId, id: &str) -> Result<(), sqlx::Error> {
        self.set_campaign_state(tenant_id, id, Some("cancelled"), &["queued", "paused"], "cancelled").await
    }

    async fn set_campaign_state(
        &self,
        tenant_id: &TenantId,
        id: &str,
        state: Option<&str>,
        from: &[&str],
        to: &str,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.begin_write().await?;
        // The messages first, then the campaign: the order a claim takes its
        // locks in (its messages, then the campaign's render tally). The other
        // way round, a claim and a cancel or pause could each wait for the
        // other on PostgreSQL, and the database would abort one of them.
        stop_unsent(&mut tx, tenant_id, id, to, from, self.now_ms()).await?;
        sqlx::query("UPDATE campaigns SET state = $3, pause_reason = NULL WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .bind(state)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}

/// Moves a campaign's messages in `from` to `to`; when cancelling, also stops
/// its batches waiting for a retry.
async fn stop_unsent(
    tx: &mut WriteTx,
    tenant_id: &TenantId,
    id: &str,
    to: &str,
    from: &[&str],
    now: i64,
) -> Result<(), sqlx::Error> {
    let from_list = from.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
    sqlx::query(&format!(
        "UPDATE messages SET status = $3, updated_at = $4 WHERE tenant_id = $1 AND campaign_id = $2 AND status IN ({from_list})"
    ))
    .bind(tenant_id)
    .bind(id)
    .bind(to)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    if to == "cancelled" {
        Store::cancel_waiting_batches(tx, tenant_id, id, now).await?;
    }
    Ok(())
}
