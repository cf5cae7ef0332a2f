use sqlx::FromRow;

use super::tenant_webhooks::{enabled_endpoints, insert_deliveries, webhook_body, QueuedDelivery};
use super::{Placeholders, Store};
use crate::domain::{is_tenant_event_type, now_ms, MessageStatus};

/// A delivery event, already verified and parsed, as the store applies it.
#[derive(Clone, Debug)]
pub struct IncomingEvent {
    pub svix_id: String,
    pub event_type: String,
    /// `data.email_id`: the provider's id for the message.
    pub provider_email_id: Option<String>,
    /// `data.tags.message`: mailroom's own id, which it put on every email, so an
    /// event that outruns the recording of the provider id still finds its row.
    pub message_tag: Option<String>,
    /// The message status this event moves to, if it moves one.
    pub new_status: Option<MessageStatus>,
    /// `bounced` or `complained` when the recipient must be suppressed.
    pub suppress: Option<&'static str>,
    pub payload: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// Stored for the first time (and applied to its message if one matched).
    Applied { message_found: bool },
    /// This svix-id was stored before; nothing was done.
    Duplicate,
}

#[derive(Clone, Debug, FromRow)]
pub struct StoredEvent {
    pub svix_id: String,
    pub event_type: String,
    pub received_at: i64,
}

/// The message an event applies to.
#[derive(Clone, Debug, FromRow)]
pub struct EventTarget {
    id: String,
    tenant_id: String,
    to_email: String,
    campaign_id: Option<String>,
}

/// [`MessageStatus::rank`] as a SQL expression over `column`, so one statement
/// can compare and set.
fn rank_sql(column: &str) -> String {
    let arms: String = MessageStatus::ALL.iter().map(|s| format!(" WHEN '{}' THEN {}", s.as_str(), s.rank())).collect();
    format!("(CASE {column}{arms} ELSE 0 END)")
}

impl Store {
    /// The message an event is about: by the provider's id, else by the message
    /// id mailroom tagged the email with. Read before taking the write lock: ids
    /// never change once set, and the status update is conditional.
    pub async fn event_target(&self, e: &IncomingEvent) -> Result<Option<EventTarget>, sqlx::Error> {
        if e.provider_email_id.is_none() && e.message_tag.is_none() {
            return Ok(None);
        }
        sqlx::query_as(
            "SELECT id, tenant_id, to_email, campaign_id FROM messages WHERE provider_id = $1 OR id = $2 \
             ORDER BY CASE WHEN provider_id = $1 THEN 0 ELSE 1 END LIMIT 1",
        )
        .bind(e.provider_email_id.as_deref().unwrap_or(""))
        .bind(e.message_tag.as_deref().unwrap_or(""))
        .fetch_optional(&self.pool)
        .await
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
        let now = now_ms();
        let mut p = Placeholders::after(0);
        let rows: Vec<String> = events.iter().map(|_| format!("({})", p.list(7))).collect();
        let sql = format!(
            "INSERT INTO webhook_events (svix_id, event_type, provider_email_id, message_id, tenant_id, payload, received_at) \
             VALUES {} ON CONFLICT (svix_id) DO NOTHING RETURNING svix_id",
            rows.join(", ")
        );
        let mut insert = sqlx::query_scalar::<_, String>(&sql);
        for (e, target) in events {
            insert = insert
                .bind(&e.svix_id)
                .bind(&e.event_type)
                .bind(&e.provider_email_id)
                .bind(target.as_ref().map(|m| m.id.as_str()))
                .bind(target.as_ref().map(|m| m.tenant_id.as_str()))
                .bind(&e.payload)
                .bind(now);
        }
        let stored: std::collections::HashSet<String> = insert.fetch_all(&mut *tx).await?.into_iter().collect();

        // Outcomes: an event is new when it was stored, and only its first copy
        // in the group counts as that event.
        let mut seen = std::collections::HashSet::new();
        let mut outcomes = Vec::with_capacity(events.len());
        let mut applied: Vec<(&IncomingEvent, &EventTarget)> = Vec::new();
        for (e, target) in events {
            if !stored.contains(&e.svix_id) || !seen.insert(e.svix_id.as_str()) {
                outcomes.push(EventOutcome::Duplicate);
                continue;
            }
            outcomes.push(EventOutcome::Applied { message_found: target.is_some() });
            if let Some(m) = target {
                applied.push((e, m));
            }
        }
        move_messages_forward(&mut tx, &applied, now).await?;
        for (e, m) in &applied {
            if let Some(reason) = e.suppress {
                suppress(&mut tx, m, reason, now).await?;
            }
        }
        notify_tenants(&mut tx, &applied, now).await?;
        tx.commit().await?;
        Ok(outcomes)
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
    applied: &[(&IncomingEvent, &EventTarget)],
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut best: std::collections::BTreeMap<&str, (MessageStatus, Option<&str>)> = std::collections::BTreeMap::new();
    for (e, m) in applied {
        let Some(status) = e.new_status else { continue };
        let entry = best.entry(m.id.as_str()).or_insert((status, None));
        if status.rank() > entry.0.rank() {
            entry.0 = status;
        }
        if entry.1.is_none() {
            entry.1 = e.provider_email_id.as_deref();
        }
    }
    if best.is_empty() {
        return Ok(());
    }
    // `(SELECT ... UNION ALL SELECT ...)` rather than `VALUES ... AS v(...)`:
    // SQLite cannot name the columns of a VALUES list.
    let mut p = Placeholders::after(1);
    let rows: Vec<String> = best
        .iter()
        .map(|_| {
            format!(
                "SELECT {} AS id, {} AS status, {} AS provider_id, {} AS rank",
                p.next(),
                p.next(),
                p.next(),
                p.next()
            )
        })
        .collect();
    let sql = format!(
        "UPDATE messages SET status = v.status, provider_id = COALESCE(messages.provider_id, v.provider_id), updated_at = $1 \
         FROM ({}) v WHERE messages.id = v.id AND {} < v.rank",
        rows.join(" UNION ALL "),
        rank_sql("messages.status")
    );
    let mut q = sqlx::query(&sql).bind(now);
    for (id, (status, provider_id)) in &best {
        q = q.bind(*id).bind(status.as_str()).bind(*provider_id).bind(i64::from(status.rank()));
    }
    q.execute(&mut *tx).await.map(|_| ())
}

/// Queues `email.*` webhooks for the applied events' tenants, in the events'
/// own transaction (so a notification exists exactly when its event was
/// applied, once per svix-id). One indexed query finds the group's tenants'
/// endpoints; with none, that is all it costs.
async fn notify_tenants(
    tx: &mut sqlx::AnyConnection,
    applied: &[(&IncomingEvent, &EventTarget)],
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tenants: Vec<&str> = applied
        .iter()
        .filter(|(e, _)| e.event_type.starts_with("email.") && is_tenant_event_type(&e.event_type))
        .map(|(_, m)| m.tenant_id.as_str())
        .collect();
    tenants.sort_unstable();
    tenants.dedup();
    let endpoints = enabled_endpoints(tx, &tenants).await?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::new();
    for (e, m) in applied {
        if !tenants.contains(&m.tenant_id.as_str()) || !is_tenant_event_type(&e.event_type) {
            continue;
        }
        let mut subscribed = endpoints.iter().filter(|s| s.tenant_id == m.tenant_id && s.subscribes_to(&e.event_type));
        let Some(first) = subscribed.next() else { continue };
        let body = webhook_body(&e.event_type, &email_event_data(e, m), now);
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

/// What a tenant's endpoint learns of a delivery event: mailroom's own ids
/// (never the provider's), and the click link, bounce or failure where present.
fn email_event_data(e: &IncomingEvent, m: &EventTarget) -> serde_json::Value {
    let payload: serde_json::Value = serde_json::from_str(&e.payload).unwrap_or_default();
    let data = &payload["data"];
    let created_at = payload["created_at"].as_str().or_else(|| data["created_at"].as_str());
    let mut out = serde_json::json!({
        "email_id": m.id,
        "campaign_id": m.campaign_id,
        "to": m.to_email,
        "created_at": created_at,
    });
    if let Some(link) = data["click"]["link"].as_str() {
        out["click"] = serde_json::json!({ "link": link });
    }
    if data["bounce"].is_object() {
        out["bounce"] = serde_json::json!({ "type": data["bounce"]["type"], "subType": data["bounce"]["subType"] });
    }
    if let Some(reason) = data["failed"]["reason"].as_str() {
        out["failed"] = serde_json::json!({ "reason": reason });
    }
    out
}

/// A hard bounce or a complaint: the address is suppressed for the message's
/// tenant, and that tenant's contact marked. A complaint outranks a bounce;
/// neither is undone by the other.
async fn suppress(tx: &mut sqlx::AnyConnection, m: &EventTarget, reason: &str, now: i64) -> Result<(), sqlx::Error> {
    let email_normalized = m.to_email.to_lowercase();
    sqlx::query(
        "INSERT INTO suppressions (tenant_id, email_normalized, reason, source, created_at) VALUES ($1, $2, $3, $5, $4) \
         ON CONFLICT (tenant_id, email_normalized) DO UPDATE SET \
           reason = CASE WHEN suppressions.reason = 'complained' THEN suppressions.reason ELSE excluded.reason END, \
           source = CASE WHEN suppressions.reason = 'complained' THEN suppressions.source ELSE excluded.source END",
    )
    .bind(&m.tenant_id)
    .bind(&email_normalized)
    .bind(reason)
    .bind(now)
    .bind(&m.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE contacts SET status = $3, updated_at = $4 \
         WHERE tenant_id = $1 AND email_normalized = $2 AND status <> 'complained'",
    )
    .bind(&m.tenant_id)
    .bind(&email_normalized)
    .bind(reason)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map(|_| ())
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
