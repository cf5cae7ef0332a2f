//! Delivery events' SQL: finding the messages events are about, storing and
//! applying a group of them in one transaction (what to apply is
//! [`crate::domain::delivery_event::plan`]'s), and listing them.

use std::collections::HashMap;

use sqlx::FromRow;

use super::suppressions::{mark_contacts, write_suppressions, Existing, MarkContacts, Marked, NewSuppression};
use super::tenant_webhooks::{enabled_endpoints, insert_deliveries, webhook_body, QueuedDelivery};
use super::{Placeholders, Store};
use crate::domain::delivery_event::{
    self, tenant_event_data, EventOutcome, EventPlan, EventTarget, IncomingEvent, SoftBounce, StatusMove,
    SuppressionHit, DOMAIN_TROUBLE,
};
use crate::domain::MessageStatus;

#[derive(Clone, Debug, FromRow)]
pub struct StoredEvent {
    pub svix_id: String,
    pub event_type: String,
    pub received_at: i64,
}

/// What `GET /customers/{id}/events` asks for. `before` is the cursor: the
/// (time, svix id) of the last event of the previous page.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub campaign_id: Option<String>,
    pub contact_id: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// One stored event as the listing shows it.
#[derive(Clone, Debug, FromRow)]
pub struct ListedEvent {
    pub svix_id: String,
    pub event_type: String,
    pub message_id: Option<String>,
    pub provider_email_id: Option<String>,
    pub campaign_id: Option<String>,
    pub contact_id: Option<String>,
    pub link: Option<String>,
    pub bounce_type: Option<String>,
    pub occurred_at: i64,
    pub received_at: i64,
}

/// [`MessageStatus::rank`] as a SQL expression over `column`, so one statement
/// can compare and set.
fn rank_sql(column: &str) -> String {
    let arms: String = MessageStatus::ALL.iter().map(|s| format!(" WHEN '{}' THEN {}", s.as_str(), s.rank())).collect();
    format!("(CASE {column}{arms} ELSE 0 END)")
}

impl Store {
    /// The message each event is about: by the provider's id, else by the
    /// message id mailroom tagged the email with. One query per 250 events (the
    /// group commit's lookup, rather than a round trip per webhook request).
    /// Read before taking the write lock: ids never change once set, and the
    /// status update is conditional.
    pub async fn event_targets(&self, events: &[&IncomingEvent]) -> Result<Vec<Option<EventTarget>>, sqlx::Error> {
        #[derive(FromRow)]
        struct Found {
            provider_id: Option<String>,
            #[sqlx(flatten)]
            target: EventTarget,
        }
        let mut targets = vec![None; events.len()];
        for (chunk_no, chunk) in events.chunks(250).enumerate() {
            let provider_ids: Vec<&str> = chunk.iter().filter_map(|e| e.provider_email_id.as_deref()).collect();
            let tags: Vec<&str> = chunk.iter().filter_map(|e| e.message_tag.as_deref()).collect();
            if provider_ids.is_empty() && tags.is_empty() {
                continue;
            }
            let mut p = Placeholders::after(0);
            let mut wanted = Vec::new();
            if !provider_ids.is_empty() {
                wanted.push(format!("m.provider_id IN ({})", p.list(provider_ids.len())));
            }
            if !tags.is_empty() {
                wanted.push(format!("m.id IN ({})", p.list(tags.len())));
            }
            let sql = format!(
                "SELECT m.provider_id, m.id, m.tenant_id, m.to_email, m.campaign_id, m.test, \
                   COALESCE(m.contact_id, (SELECT c.id FROM contacts c WHERE c.tenant_id = m.tenant_id \
                     AND c.email_normalized = LOWER(m.to_email))) AS contact_id \
                 FROM messages m WHERE {}",
                wanted.join(" OR ")
            );
            let sql = self.native_sql(&sql);
            let mut q = sqlx::query_as::<_, Found>(&sql);
            for id in provider_ids.iter().chain(&tags) {
                q = q.bind(*id);
            }
            let found = q.fetch_all(&self.pool).await?;
            let by_provider: HashMap<&str, &EventTarget> =
                found.iter().filter_map(|f| Some((f.provider_id.as_deref()?, &f.target))).collect();
            let by_id: HashMap<&str, &EventTarget> = found.iter().map(|f| (f.target.id.as_str(), &f.target)).collect();
            for (i, e) in chunk.iter().enumerate() {
                let target = e
                    .provider_email_id
                    .as_deref()
                    .and_then(|pid| by_provider.get(pid))
                    .or_else(|| e.message_tag.as_deref().and_then(|tag| by_id.get(tag)));
                targets[chunk_no * 250 + i] = target.map(|t| (*t).clone());
            }
        }
        Ok(targets)
    }

    /// Stores and applies several events in one transaction (group commit),
    /// in a fixed handful of statements whatever the group's size: one insert
    /// of every event (deduplicated on its svix-id, including against the
    /// others), one forward-only status update of every message they move, and
    /// the suppressions. Side effects reach contacts only through the message's
    /// own tenant.
    pub async fn apply_events(
        &self,
        events: &[(&IncomingEvent, Option<EventTarget>)],
    ) -> Result<Vec<EventOutcome>, sqlx::Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let mut p = Placeholders::after(0);
        let rows: Vec<String> = events.iter().map(|_| format!("({})", p.list(12))).collect();
        let sql = format!(
            "INSERT INTO webhook_events (svix_id, event_type, provider_email_id, message_id, tenant_id, payload, received_at, \
               campaign_id, contact_id, link, bounce_type, occurred_at) \
             VALUES {} ON CONFLICT (svix_id) DO NOTHING RETURNING svix_id",
            rows.join(", ")
        );
        let sql = super::native_sql(&tx, &sql);
        // An event about an erased person's message (Resend reports opens
        // and clicks for days) keeps no payload: it would name the address.
        let erased: Vec<Option<String>> = events
            .iter()
            .map(|(e, target)| {
                target
                    .as_ref()
                    .filter(|m| crate::domain::is_erased_address(&m.to_email))
                    .map(|_| serde_json::json!({ "type": e.event_type, "erased": true }).to_string())
            })
            .collect();
        let mut insert = sqlx::query_scalar::<_, String>(&sql);
        for ((e, target), erased) in events.iter().zip(&erased) {
            insert = insert
                .bind(&e.svix_id)
                .bind(&e.event_type)
                .bind(&e.provider_email_id)
                .bind(target.as_ref().map(|m| m.id.as_str()))
                .bind(target.as_ref().map(|m| m.tenant_id.as_str()))
                .bind(erased.as_deref().unwrap_or(&e.payload))
                .bind(now)
                .bind(target.as_ref().and_then(|m| m.campaign_id.as_deref()))
                .bind(target.as_ref().and_then(|m| m.contact_id.as_deref()))
                .bind(&e.link)
                .bind(&e.bounce_type)
                .bind(e.occurred_at.unwrap_or(now));
        }
        let stored: std::collections::HashSet<String> = insert.fetch_all(&mut *tx).await?.into_iter().collect();

        let EventPlan {
            outcomes,
            applied,
            moves,
            suppressions,
            notify_tenants: tenants,
            notifications,
            trigger_tenants,
            soft_bounces,
            figures,
            domain_changes,
        } = delivery_event::plan(events, &stored, now);
        move_messages_forward(&mut tx, &moves, now).await?;
        suppress(&mut tx, &suppressions, now).await?;
        notify_tenants(&mut tx, &tenants, &notifications, now).await?;
        // The addresses these events suppressed are suppressed when the rules read them.
        let suppressed: Vec<(&str, &str)> = suppressions.iter().map(|h| (h.tenant_id, h.email.as_str())).collect();
        super::automations::fire_rules(&mut tx, &trigger_tenants, &applied, &suppressed, now).await?;
        self.suppress_soft_bounces(&mut tx, &soft_bounces, now).await?;
        let firsts: Vec<super::stats::First> = figures
            .into_iter()
            .map(|f| super::stats::First {
                tenant_id: f.target.tenant_id.clone(),
                message_id: f.target.id.clone(),
                campaign_id: f.target.campaign_id.clone(),
                kind: f.kind,
                at: f.at,
            })
            .collect();
        super::stats::record_firsts(&mut tx, firsts).await?;
        for e in domain_changes {
            apply_domain_event(&mut tx, e, now).await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Suppresses (`soft_bounced`) each contact that has reached the soft-bounce
    /// limit of `Transient` bounces within the window with this group's events:
    /// one indexed count per contact that bounced softly in the group.
    async fn suppress_soft_bounces(
        &self,
        tx: &mut sqlx::AnyConnection,
        contacts: &[SoftBounce<'_>],
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let since = now.saturating_sub(self.soft_bounce.window_ms);
        for &SoftBounce { tenant_id, contact_id, target: m } in contacts {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM webhook_events WHERE tenant_id = $1 AND contact_id = $2 \
                 AND bounce_type = 'Transient' AND occurred_at >= $3",
            )
            .bind(tenant_id)
            .bind(contact_id)
            .bind(since)
            .fetch_one(&mut *tx)
            .await?;
            if n >= self.soft_bounce.limit {
                soft_suppress(tx, m, contact_id, now).await?;
            }
        }
        Ok(())
    }

    /// A tenant's events, newest first (by their own time, then svix id), `limit + 1` rows.
    pub async fn tenant_events(
        &self,
        tenant_id: &crate::domain::TenantId,
        f: &EventFilter,
    ) -> Result<Vec<ListedEvent>, sqlx::Error> {
        // Only the filters asked for, so each query can use the index that fits
        // (a campaign's events: `webhook_events_campaign_time`; else the tenant's).
        enum Arg<'a> {
            Text(&'a str),
            Int(i64),
        }
        let mut conditions = vec!["tenant_id = $1".to_owned()];
        let mut args: Vec<Arg> = Vec::new();
        let mut p = Placeholders::after(1);
        for (column, value) in [
            ("event_type", f.event_type.as_deref()),
            ("campaign_id", f.campaign_id.as_deref()),
            ("contact_id", f.contact_id.as_deref()),
        ] {
            if let Some(v) = value {
                conditions.push(format!("{column} = {}", p.next()));
                args.push(Arg::Text(v));
            }
        }
        if let Some(since) = f.since {
            conditions.push(format!("occurred_at >= {}", p.next()));
            args.push(Arg::Int(since));
        }
        if let Some(until) = f.until {
            conditions.push(format!("occurred_at < {}", p.next()));
            args.push(Arg::Int(until));
        }
        if let Some((at, id)) = &f.before {
            let (a, b, c) = (p.next(), p.next(), p.next());
            conditions.push(format!("(occurred_at < {a} OR (occurred_at = {b} AND svix_id < {c}))"));
            args.extend([Arg::Int(*at), Arg::Int(*at), Arg::Text(id)]);
        }
        // The order names the table's column, not the output's `occurred_at`
        // (which SQLite and PostgreSQL would both take for the COALESCE, an
        // expression no index has: every listing then sorted all the tenant's
        // events, seconds at millions).
        let sql = format!(
            "SELECT svix_id, event_type, message_id, provider_email_id, campaign_id, contact_id, link, bounce_type, \
               COALESCE(occurred_at, received_at) AS occurred_at, received_at \
             FROM webhook_events WHERE {} \
             ORDER BY webhook_events.occurred_at DESC, webhook_events.svix_id DESC LIMIT {}",
            conditions.join(" AND "),
            p.next()
        );
        let mut q = sqlx::query_as::<_, ListedEvent>(&sql).bind(tenant_id);
        for arg in args {
            q = match arg {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
            };
        }
        q.bind(f.limit + 1).fetch_all(&self.pool).await
    }

    /// How many of the tenant's events have this type and campaign (either
    /// may be absent), counted up to `cap`: a listing's total without walking
    /// millions of rows (`cap + 1` means "more than `cap`").
    pub async fn tenant_event_total(
        &self,
        tenant_id: &crate::domain::TenantId,
        event_type: Option<&str>,
        campaign_id: Option<&str>,
        cap: i64,
    ) -> Result<i64, sqlx::Error> {
        let mut p = super::Placeholders::after(1);
        let mut conditions = vec!["tenant_id = $1".to_owned()];
        let mut args = Vec::new();
        for (column, value) in [("event_type", event_type), ("campaign_id", campaign_id)] {
            if let Some(value) = value {
                conditions.push(format!("{column} = {}", p.next()));
                args.push(value);
            }
        }
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM webhook_events WHERE {} LIMIT {}) capped",
            conditions.join(" AND "),
            cap.clamp(0, 1_000_000) + 1
        );
        let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(tenant_id);
        for arg in args {
            q = q.bind(arg);
        }
        q.fetch_one(&self.pool).await
    }

    pub async fn message_events(&self, message_id: &str) -> Result<Vec<StoredEvent>, sqlx::Error> {
        sqlx::query_as("SELECT svix_id, event_type, received_at FROM webhook_events WHERE message_id = $1 ORDER BY received_at, svix_id")
            .bind(message_id)
            .fetch_all(&self.pool)
            .await
    }
}

/// One statement for every message the events move: each to the highest-ranked
/// status among its events, and only forward (decided in SQL, so concurrent
/// writers cannot move a message back).
async fn move_messages_forward(
    tx: &mut sqlx::AnyConnection,
    moves: &[StatusMove<'_>],
    now: i64,
) -> Result<(), sqlx::Error> {
    if moves.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE messages SET status = v.status, provider_id = COALESCE(messages.provider_id, v.provider_id), updated_at = $1 \
         FROM {} v WHERE messages.id = v.id AND {} < v.rank",
        Placeholders::after(1).rows(moves.len(), &["id", "status", "provider_id", "rank"]),
        rank_sql("messages.status")
    );
    let sql = super::native_sql(tx, &sql);
    let mut q = sqlx::query(&sql).bind(now);
    for m in moves {
        q = q.bind(m.message_id).bind(m.status.as_str()).bind(m.provider_id).bind(i64::from(m.status.rank()));
    }
    q.execute(&mut *tx).await.map(|_| ())
}

/// Queues `email.*` webhooks for the applied events' tenants, in the events'
/// own transaction (so a notification exists exactly when its event was
/// applied, once per svix-id). One indexed query finds the group's tenants'
/// endpoints; with none, that is all it costs.
async fn notify_tenants(
    tx: &mut sqlx::AnyConnection,
    tenants: &[&str],
    notifications: &[(&IncomingEvent, &EventTarget)],
    now: i64,
) -> Result<(), sqlx::Error> {
    let endpoints = enabled_endpoints(tx, tenants).await?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::new();
    for (e, m) in notifications {
        let mut subscribed = endpoints.iter().filter(|s| s.tenant_id == m.tenant_id && s.subscribes_to(&e.event_type));
        let Some(first) = subscribed.next() else { continue };
        let body = webhook_body(&e.event_type, &tenant_event_data(e, m), now);
        for s in std::iter::once(first).chain(subscribed) {
            rows.push(QueuedDelivery {
                endpoint_id: &s.id,
                tenant_id: &m.tenant_id,
                event_type: &e.event_type,
                payload: body.clone(),
            });
        }
    }
    insert_deliveries(tx, &rows, now).await.map(|_| ())
}

/// Hard bounces and complaints: each address is suppressed for its message's
/// tenant, and that tenant's contact marked, in two statements for the whole
/// group. A complaint outranks a bounce; neither is undone by the other.
async fn suppress(tx: &mut sqlx::AnyConnection, hits: &[SuppressionHit<'_>], now: i64) -> Result<(), sqlx::Error> {
    let rows: Vec<NewSuppression> = hits
        .iter()
        .map(|h| NewSuppression { tenant_id: h.tenant_id, email: &h.email, reason: h.reason, source: h.source })
        .collect();
    write_suppressions(tx, &rows, Existing::ComplaintWins, now).await?;
    mark_contacts(tx, &rows, MarkContacts::UnlessComplained, Marked::Delivery, now).await
}

/// A `domain.*` event: the tenant whose Resend domain it names takes its
/// status, unless a newer domain event already set one. A failing domain holds
/// the tenant's campaigns (sends are refused while it is not verified, and the
/// claim defers its queued campaign mail) and raises an alert in the log.
async fn apply_domain_event(tx: &mut sqlx::AnyConnection, e: &IncomingEvent, now: i64) -> Result<(), sqlx::Error> {
    let Some(d) = &e.domain else { return Ok(()) };
    let at = e.occurred_at.unwrap_or(now);
    let tenants: Vec<String> = sqlx::query_scalar(
        "UPDATE tenants SET domain_status = $2, domain_event_at = $3, updated_at = $4 \
         WHERE resend_domain_id = $1 AND (domain_event_at IS NULL OR domain_event_at <= $3) RETURNING id",
    )
    .bind(&d.resend_domain_id)
    .bind(&d.status)
    .bind(at)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    for tenant in tenants {
        if DOMAIN_TROUBLE.contains(&d.status.as_str()) {
            tracing::warn!(alert = "domain_failing", tenant = %tenant, status = %d.status, event = %e.event_type,
                "ALERT: the tenant's sending domain is failing; its campaigns are held until it is verified again");
        } else {
            tracing::info!(tenant = %tenant, status = %d.status, event = %e.event_type, "domain status updated by the provider");
        }
    }
    Ok(())
}

/// The soft-bounce limit reached: the address is suppressed (`soft_bounced`)
/// unless it already is for another reason, and a subscribed contact marked.
async fn soft_suppress(
    tx: &mut sqlx::AnyConnection,
    m: &EventTarget,
    contact_id: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let email: Option<String> =
        sqlx::query_scalar("SELECT email_normalized FROM contacts WHERE tenant_id = $1 AND id = $2")
            .bind(&m.tenant_id)
            .bind(contact_id)
            .fetch_optional(&mut *tx)
            .await?;
    let email = email.unwrap_or_else(|| m.to_email.to_lowercase());
    let row = NewSuppression { tenant_id: &m.tenant_id, email: &email, reason: "soft_bounced", source: &m.id };
    write_suppressions(tx, std::slice::from_ref(&row), Existing::Keep, now).await?;
    mark_contacts(tx, std::slice::from_ref(&row), MarkContacts::OnlySubscribed, Marked::Delivery, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_rank_covers_every_status() {
        let sql = rank_sql("status");
        for s in MessageStatus::ALL {
            assert!(sql.contains(&format!("'{}' THEN {}", s.as_str(), s.rank())), "{s}");
        }
    }
}
