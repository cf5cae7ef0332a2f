//! The suppression list: addresses a tenant never mails again (bounced,
//! complained, unsubscribed, or added by hand), whatever their contact says,
//! and the one-click unsubscribe that adds to it.

use sqlx::FromRow;

use super::{Placeholders, Store};
use crate::domain::{ConsentSource, TenantId};

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
    /// An address the tenant erased that came back: only the person's
    /// confirmed double opt-in lifts it, never a removal by hand.
    Erased,
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
    /// The topic the message's campaign targets (or, for an automation's
    /// email, the message's own), if it still exists: a one-click
    /// unsubscribe leaves that topic only.
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
            // Only the person's confirmed signup (double opt-in) lifts an erasure's suppression.
            Some("erased") => Unsuppress::Erased,
            Some(reason) => {
                sqlx::query("DELETE FROM suppressions WHERE tenant_id = $1 AND email_normalized = $2")
                    .bind(tenant_id)
                    .bind(email_normalized)
                    .execute(&mut *tx)
                    .await?;
                // Taken off the list through the API (or the dashboard, which calls the same service).
                sqlx::query(
                    "INSERT INTO consent_records (id, tenant_id, contact_id, at, change, source) \
                     SELECT $5, tenant_id, id, $4, 'resubscribed', 'api' FROM contacts \
                     WHERE tenant_id = $1 AND email_normalized = $2 AND status = $3",
                )
                .bind(tenant_id)
                .bind(email_normalized)
                .bind(reason)
                .bind(self.now_ms())
                .bind(crate::domain::new_id())
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
               LEFT JOIN topics tp ON tp.id = COALESCE(cp.topic_id, m.topic_id) AND tp.tenant_id = m.tenant_id \
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
    /// The contact's change of consent is recorded from `origin`.
    pub async fn unsubscribe(
        &self,
        target: &UnsubscribeTarget,
        message_id: &str,
        origin: &crate::domain::ConsentOrigin,
    ) -> Result<(), sqlx::Error> {
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
        let marked = Marked::By(origin);
        mark_contacts(&mut tx, std::slice::from_ref(&row), MarkContacts::OnlySubscribed, marked, now).await?;
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

    /// Recipients who unsubscribed through each of a tenant's campaigns (or
    /// one): from everything (the suppressions it sourced) or from its topic
    /// only ([`TOPIC_LEAVERS`]), each person once.
    pub async fn campaign_unsubscribes(
        &self,
        tenant_id: &TenantId,
        campaign_id: Option<&str>,
    ) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let mut everything: Vec<(String, i64)> = sqlx::query_as(
            "SELECT source, COUNT(*) FROM suppressions WHERE tenant_id = $1 AND reason = 'unsubscribed' \
             AND source IS NOT NULL AND ($2 = '' OR source = $2) GROUP BY source",
        )
        .bind(tenant_id)
        .bind(campaign_id.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        let left_topic: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT r.campaign_id, COUNT(DISTINCT r.contact_id) {TOPIC_LEAVERS} \
             AND r.tenant_id = $1 AND ($2 = '' OR r.campaign_id = $2) GROUP BY r.campaign_id"
        ))
        .bind(tenant_id)
        .bind(campaign_id.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        for (campaign, n) in left_topic {
            match everything.iter_mut().find(|(c, _)| *c == campaign) {
                Some((_, total)) => *total += n,
                None => everything.push((campaign, n)),
            }
        }
        Ok(everything)
    }
}

/// `FROM` and `WHERE` of the recipients who left a campaign's own topic
/// through its mail (one-click or the preference centre; another topic left
/// on the same page is not the campaign's doing) and did not go on to
/// unsubscribe from everything through it (a suppression counts them then):
/// count `DISTINCT r.contact_id` by `r.campaign_id`, or each (campaign,
/// contact) once by time.
/// Consent records stay through an erasure, so the figure does too.
pub(super) const TOPIC_LEAVERS: &str = "FROM consent_records r \
    JOIN campaigns lc ON lc.id = r.campaign_id AND lc.topic_id = r.topic_id \
    WHERE r.change = 'topic_unsubscribed' AND r.campaign_id IS NOT NULL \
      AND NOT EXISTS (SELECT 1 FROM consent_records e WHERE e.tenant_id = r.tenant_id \
        AND e.contact_id = r.contact_id AND e.campaign_id = r.campaign_id AND e.change = 'unsubscribed')";

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
    // By hand through the API or the dashboard (`manual`), or by an automation.
    let by = if reason == "automation" { ConsentSource::Automation } else { ConsentSource::Api };
    record_suppressed(tx, &rows, by, now).await?;
    write_suppressions(tx, &rows, Existing::Keep, now).await
}

/// Records `suppressed` (from `source`) for the contacts of the addresses
/// these suppressions will newly suppress: one statement, before they are
/// written. (Bounces, complaints and unsubscribes are recorded with the
/// contact's change of status instead: [`mark_contacts`].)
pub(super) async fn record_suppressed(
    tx: &mut sqlx::AnyConnection,
    rows: &[NewSuppression<'_>],
    source: ConsentSource,
    now: i64,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO consent_records (id, tenant_id, contact_id, at, change, source) \
         SELECT {}, c.tenant_id, c.id, $1, 'suppressed', $3 \
         FROM contacts c JOIN {} v ON c.tenant_id = v.tenant_id AND c.email_normalized = v.email \
         WHERE NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.tenant_id = v.tenant_id AND s.email_normalized = v.email)",
        super::consent::bulk_id_sql(tx, "$2", "ROW_NUMBER() OVER ()"),
        Placeholders::after(3).rows(rows.len(), &["tenant_id", "email"])
    );
    let sql = super::native_sql(tx, &sql);
    let mut q = sqlx::query(&sql).bind(now).bind(super::id_prefix()).bind(source.as_str());
    for r in rows {
        q = q.bind(r.tenant_id).bind(r.email);
    }
    q.execute(&mut *tx).await.map(|_| ())
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

/// Where the consent records of contacts marked come from.
pub(super) enum Marked<'a> {
    /// Delivery events: a bounce (`bounce`) or a complaint (`complaint`) of
    /// the message the suppression's source names (its campaign recorded).
    Delivery,
    /// This origin (a one-click unsubscribe).
    By(&'a crate::domain::ConsentOrigin),
}

/// Sets the status of the tenants' contacts with these addresses to the
/// suppression's reason, and records each contact whose status changes
/// (`suppressed_bounce`, `suppressed_complaint`, `unsubscribed`): one
/// statement on PostgreSQL (the update's rows feed the records' insert), two
/// on SQLite (records, then the update: its writers take turns, so both see
/// the same contacts).
pub(super) async fn mark_contacts(
    tx: &mut sqlx::AnyConnection,
    rows: &[NewSuppression<'_>],
    which: MarkContacts,
    marked: Marked<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let only = |t: &str| match which {
        MarkContacts::UnlessComplained => format!("{t}.status <> 'complained'"),
        MarkContacts::OnlySubscribed => format!("{t}.status = 'subscribed'"),
    };
    let postgres = tx.backend_name().eq_ignore_ascii_case("postgresql");
    let mut p = Placeholders::after(2);
    let origin_values = match &marked {
        Marked::Delivery => "CASE v.reason WHEN 'complained' THEN 'complaint' ELSE 'bounce' END, \
             (SELECT m.campaign_id FROM messages m WHERE m.id = v.source), NULL, NULL, NULL"
            .to_owned(),
        Marked::By(_) => p.list(5),
    };
    let values = p.rows(rows.len(), &["tenant_id", "email", "reason", "source"]);
    let id_sql = super::consent::bulk_id_sql(tx, "$2", "ROW_NUMBER() OVER ()");
    let record = |from: &str, contact: &str| {
        format!(
            "INSERT INTO consent_records (id, tenant_id, contact_id, at, change, source, campaign_id, form_id, \
               consent_text, consent_text_version) \
             SELECT {id_sql}, v.tenant_id, {contact}, $1, \
               CASE v.reason WHEN 'complained' THEN 'suppressed_complaint' WHEN 'unsubscribed' THEN 'unsubscribed' \
                 ELSE 'suppressed_bounce' END, {origin_values} FROM {from}"
        )
    };
    let update_where = format!(
        "contacts.tenant_id = v.tenant_id AND contacts.email_normalized = v.email AND {} AND contacts.status <> v.reason",
        only("contacts")
    );
    let returning = match &marked {
        Marked::By(o) if o.client.is_some() => " RETURNING id",
        _ => "",
    };
    let statements: Vec<String> = if postgres {
        vec![format!(
            "WITH changed AS (UPDATE contacts SET status = v.reason, updated_at = $1 FROM {values} v WHERE {update_where} \
               RETURNING contacts.id AS contact_id, v.tenant_id, v.reason, v.source) {}{returning}",
            record("changed v", "v.contact_id")
        )]
    } else {
        vec![
            format!(
                "{} WHERE {} AND c.status <> v.reason{returning}",
                record(
                    &format!(
                        "contacts c JOIN {values} v ON c.tenant_id = v.tenant_id AND c.email_normalized = v.email"
                    ),
                    "c.id"
                ),
                only("c")
            ),
            format!("UPDATE contacts SET status = v.reason, updated_at = $1 FROM {values} v WHERE {update_where}"),
        ]
    };
    let prefix = super::id_prefix();
    for (i, sql) in statements.iter().enumerate() {
        let sql = super::native_sql(tx, sql);
        let mut q = sqlx::query_scalar::<_, String>(&sql).bind(now).bind(&prefix);
        if let Marked::By(o) = &marked {
            q = q
                .bind(o.source.as_str())
                .bind(o.campaign_id.as_deref())
                .bind(o.form_id.as_deref())
                .bind(o.consent_text.as_deref())
                .bind(o.consent_text_version.as_deref());
        }
        for r in rows {
            q = q.bind(r.tenant_id).bind(r.email).bind(r.reason).bind(r.source);
        }
        let ids = q.fetch_all(&mut *tx).await?;
        if let (0, Marked::By(o)) = (i, &marked) {
            super::consent::record_client(tx, &ids, o).await?;
        }
    }
    Ok(())
}
