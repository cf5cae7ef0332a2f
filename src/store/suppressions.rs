//! The suppression list: addresses a tenant never mails again (bounced,
//! complained, unsubscribed, or added by hand), whatever their contact says,
//! and the one-click unsubscribe that adds to it.

use sqlx::FromRow;

use super::{Placeholders, Store};
use crate::domain::TenantId;

#[derive(Clone, Debug, FromRow)]
pub struct SuppressionRow {
    pub email_normalized: String,
    pub reason: String,
    pub source: Option<String>,
    pub created_at: i64,
}

/// What removing a suppression did.
#[derive(Debug, PartialEq, Eq)]
pub enum Unsuppress {
    Removed,
    NotFound,
    /// A complaint is only removed with `force`: mailing someone who marked
    /// mail as spam hurts the whole account's reputation.
    NeedsForce,
}

/// The recipient and tenant a one-click unsubscribe link names.
#[derive(Clone, Debug, FromRow)]
pub struct UnsubscribeTarget {
    pub tenant_id: String,
    pub tenant_name: String,
    /// The tenant's language for recipients' pages (`en`, `de`).
    pub tenant_locale: String,
    pub to_email: String,
    pub campaign_id: Option<String>,
    /// The message's contact (none for transactional mail to an address alone).
    pub contact_id: Option<String>,
    /// The topic the message's campaign targets, if it still exists: a
    /// one-click unsubscribe leaves that topic only.
    pub topic_id: Option<String>,
    pub topic_name: Option<String>,
}

impl Store {
    /// One page of the suppression list in address order, `limit + 1` rows.
    pub async fn suppressions(
        &self,
        tenant_id: &TenantId,
        reason: Option<&str>,
        after: &str,
        limit: i64,
    ) -> Result<Vec<SuppressionRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT email_normalized, reason, source, created_at FROM suppressions \
             WHERE tenant_id = $1 AND ($2 = '' OR reason = $2) AND email_normalized > $3 \
             ORDER BY email_normalized LIMIT $4",
        )
        .bind(tenant_id)
        .bind(reason.unwrap_or(""))
        .bind(after)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
    }

    /// How many addresses the tenant suppresses (with `reason`, when given).
    pub async fn suppression_total(&self, tenant_id: &TenantId, reason: Option<&str>) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM suppressions WHERE tenant_id = $1 AND ($2 = '' OR reason = $2)")
            .bind(tenant_id)
            .bind(reason.unwrap_or(""))
            .fetch_one(&self.pool)
            .await
    }

    /// Adds addresses (already normalised) with `reason` from `source`; an
    /// address already suppressed keeps its entry. Returns how many were new.
    pub async fn add_suppressions(
        &self,
        tenant_id: &TenantId,
        emails: &[String],
        reason: &str,
        source: &str,
    ) -> Result<u64, sqlx::Error> {
        if emails.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let added = add_suppressions_in(&mut tx, now, tenant_id.as_str(), emails, reason, source).await?;
        tx.commit().await?;
        Ok(added)
    }

    /// Removes an address from the list. A contact whose status was set by
    /// that entry (bounced, complained, unsubscribed) is subscribed again.
    pub async fn remove_suppression(
        &self,
        tenant_id: &TenantId,
        email_normalized: &str,
        force: bool,
    ) -> Result<Unsuppress, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let reason: Option<String> =
            sqlx::query_scalar("SELECT reason FROM suppressions WHERE tenant_id = $1 AND email_normalized = $2")
                .bind(tenant_id)
                .bind(email_normalized)
                .fetch_optional(&mut *tx)
                .await?;
        let outcome = match reason.as_deref() {
            None => Unsuppress::NotFound,
            Some("complained") if !force => Unsuppress::NeedsForce,
            Some(reason) => {
                sqlx::query("DELETE FROM suppressions WHERE tenant_id = $1 AND email_normalized = $2")
                    .bind(tenant_id)
                    .bind(email_normalized)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE contacts SET status = 'subscribed', updated_at = $4 \
                     WHERE tenant_id = $1 AND email_normalized = $2 AND status = $3",
                )
                .bind(tenant_id)
                .bind(email_normalized)
                .bind(reason)
                .bind(self.now_ms())
                .execute(&mut *tx)
                .await?;
                Unsuppress::Removed
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// The recipient a message (named by an unsubscribe link) went to.
    pub async fn unsubscribe_target(&self, message_id: &str) -> Result<Option<UnsubscribeTarget>, sqlx::Error> {
        sqlx::query_as(
            "SELECT m.tenant_id, t.name AS tenant_name, t.locale AS tenant_locale, m.to_email, m.campaign_id, m.contact_id, \
               tp.id AS topic_id, tp.name AS topic_name \
             FROM messages m JOIN tenants t ON t.id = m.tenant_id \
               LEFT JOIN campaigns cp ON cp.id = m.campaign_id \
               LEFT JOIN topics tp ON tp.id = cp.topic_id AND tp.tenant_id = m.tenant_id \
             WHERE m.id = $1",
        )
        .bind(message_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Unsubscribes the recipient of a message, in that message's tenant only:
    /// the address is suppressed (reason `unsubscribed`, source the campaign,
    /// or the message for transactional mail) and its contact unsubscribed.
    /// Idempotent: an address already suppressed keeps its first entry.
    pub async fn unsubscribe(&self, target: &UnsubscribeTarget, message_id: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let email_normalized = target.to_email.to_lowercase();
        let row = NewSuppression {
            tenant_id: &target.tenant_id,
            email: &email_normalized,
            reason: "unsubscribed",
            source: target.campaign_id.as_deref().unwrap_or(message_id),
        };
        let suppressed = write_suppressions(&mut tx, std::slice::from_ref(&row), Existing::Keep, now).await?;
        mark_contacts(&mut tx, std::slice::from_ref(&row), MarkContacts::OnlySubscribed, now).await?;
        // The tenant hears of it once: when this click is what unsubscribed the address.
        if suppressed == 1 {
            let data = serde_json::json!({
                "email": email_normalized,
                "email_id": message_id,
                "campaign_id": target.campaign_id,
                "created_at": crate::domain::rfc3339(now),
            });
            let now = tx.now;
            super::enqueue_tenant_events(&mut tx, now, &target.tenant_id, "contact.unsubscribed", &data).await?;
        }
        tx.commit().await
    }

    /// Unsubscribes recorded against each of a tenant's campaigns (or one).
    pub async fn campaign_unsubscribes(
        &self,
        tenant_id: &TenantId,
        campaign_id: Option<&str>,
    ) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT source, COUNT(*) FROM suppressions WHERE tenant_id = $1 AND reason = 'unsubscribed' \
             AND source IS NOT NULL AND ($2 = '' OR source = $2) GROUP BY source",
        )
        .bind(tenant_id)
        .bind(campaign_id.unwrap_or(""))
        .fetch_all(&self.pool)
        .await
    }
}

/// [`Store::add_suppressions`] inside `tx`.
pub(super) async fn add_suppressions_in(
    tx: &mut sqlx::AnyConnection,
    now: i64,
    tenant_id: &str,
    emails: &[String],
    reason: &str,
    source: &str,
) -> Result<u64, sqlx::Error> {
    let rows: Vec<NewSuppression> =
        emails.iter().map(|email| NewSuppression { tenant_id, email, reason, source }).collect();
    write_suppressions(tx, &rows, Existing::Keep, now).await
}

/// An address (already normalised) to suppress for a tenant: why, and what suppressed it.
pub(super) struct NewSuppression<'a> {
    pub tenant_id: &'a str,
    pub email: &'a str,
    pub reason: &'a str,
    pub source: &'a str,
}

/// What a new suppression does to an address that already has one.
#[derive(Clone, Copy)]
pub(super) enum Existing {
    /// The first entry stays.
    Keep,
    /// A complaint outranks any other reason: it replaces one, and is never replaced.
    ComplaintWins,
}

/// Writes suppressions, all in one statement (a statement may not upsert the
/// same row twice: one row per address). Returns the rows written.
pub(super) async fn write_suppressions(
    tx: &mut sqlx::AnyConnection,
    rows: &[NewSuppression<'_>],
    existing: Existing,
    now: i64,
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut p = Placeholders::after(1);
    let values: Vec<String> = rows.iter().map(|_| format!("({}, $1)", p.list(4))).collect();
    let on_conflict = match existing {
        Existing::Keep => "DO NOTHING",
        Existing::ComplaintWins => {
            "DO UPDATE SET \
               reason = CASE WHEN suppressions.reason = 'complained' THEN suppressions.reason ELSE excluded.reason END, \
               source = CASE WHEN suppressions.reason = 'complained' THEN suppressions.source ELSE excluded.source END"
        }
    };
    let sql = format!(
        "INSERT INTO suppressions (tenant_id, email_normalized, reason, source, created_at) VALUES {} \
         ON CONFLICT (tenant_id, email_normalized) {on_conflict}",
        values.join(", ")
    );
    let sql = super::native_sql(tx, &sql);
    let mut q = sqlx::query(&sql).bind(now);
    for r in rows {
        q = q.bind(r.tenant_id).bind(r.email).bind(r.reason).bind(r.source);
    }
    Ok(q.execute(&mut *tx).await?.rows_affected())
}

/// Which of the suppressed addresses' contacts take the suppression's reason as their status.
#[derive(Clone, Copy)]
pub(super) enum MarkContacts {
    /// Any but a complained contact (a complaint is never undone).
    UnlessComplained,
    /// Only a subscribed contact (an earlier bounce or complaint stays).
    OnlySubscribed,
}

/// Sets the status of the tenants' contacts with these addresses to the
/// suppression's reason, in one statement.
pub(super) async fn mark_contacts(
    tx: &mut sqlx::AnyConnection,
    rows: &[NewSuppression<'_>],
    which: MarkContacts,
    now: i64,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let only = match which {
        MarkContacts::UnlessComplained => "contacts.status <> 'complained'",
        MarkContacts::OnlySubscribed => "contacts.status = 'subscribed'",
    };
    let sql = format!(
        "UPDATE contacts SET status = v.reason, updated_at = $1 FROM {} v \
         WHERE contacts.tenant_id = v.tenant_id AND contacts.email_normalized = v.email AND {only}",
        Placeholders::after(1).rows(rows.len(), &["tenant_id", "email", "reason"])
    );
    let sql = super::native_sql(tx, &sql);
    let mut q = sqlx::query(&sql).bind(now);
    for r in rows {
        q = q.bind(r.tenant_id).bind(r.email).bind(r.reason);
    }
    q.execute(&mut *tx).await.map(|_| ())
}
