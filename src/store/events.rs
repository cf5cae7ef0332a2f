use sqlx::FromRow;

use super::Store;
use crate::domain::now_ms;

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
    pub new_status: Option<&'static str>,
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
}

/// Every status a message can have.
pub const MESSAGE_STATUSES: [&str; 13] = [
    "queued",
    "paused",
    "sending",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "suppressed",
    "failed",
    "bounced",
    "dead",
    "cancelled",
    "complained",
];

/// [`status_rank`] as a SQL expression over `column`, so one statement can
/// compare and set.
fn rank_sql(column: &str) -> String {
    let arms: String = MESSAGE_STATUSES.iter().map(|s| format!(" WHEN '{s}' THEN {}", status_rank(s))).collect();
    format!("(CASE {column}{arms} ELSE 0 END)")
}

/// Delivery progress of a message. A status only moves to a higher rank, so a
/// late `delivered` never undoes a `bounced`, and a replay never moves anything
/// back. Whatever mailroom decided on its own side (`dead`, `cancelled`) ranks
/// below every status the provider reports: an email the provider accepted
/// after all (an answer lost on the way, then its events) is never shown as
/// dead or cancelled.
pub fn status_rank(status: &str) -> u8 {
    match status {
        "queued" | "paused" => 0,
        "sending" => 1,
        "dead" | "cancelled" => 2,
        "sent" => 3,
        "delivered" => 4,
        "opened" => 5,
        "clicked" => 6,
        "suppressed" | "failed" | "bounced" => 7,
        "complained" => 8,
        _ => 0,
    }
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
            "SELECT id, tenant_id, to_email FROM messages WHERE provider_id = $1 OR id = $2 \
             ORDER BY CASE WHEN provider_id = $1 THEN 0 ELSE 1 END LIMIT 1",
        )
        .bind(e.provider_email_id.as_deref().unwrap_or(""))
        .bind(e.message_tag.as_deref().unwrap_or(""))
        .fetch_optional(&self.pool)
        .await
    }

    /// Stores and applies several events in one transaction (group commit).
    /// Each is deduplicated on its svix-id, including against the others.
    /// Side effects reach contacts only through the message's own tenant.
    pub async fn apply_events(
        &self,
        events: &[(&IncomingEvent, Option<EventTarget>)],
    ) -> Result<Vec<EventOutcome>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let mut outcomes = Vec::with_capacity(events.len());
        for (e, target) in events {
            let stored = sqlx::query(
                "INSERT INTO webhook_events (svix_id, event_type, provider_email_id, message_id, tenant_id, payload, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (svix_id) DO NOTHING",
            )
            .bind(&e.svix_id)
            .bind(&e.event_type)
            .bind(&e.provider_email_id)
            .bind(target.as_ref().map(|m| m.id.as_str()))
            .bind(target.as_ref().map(|m| m.tenant_id.as_str()))
            .bind(&e.payload)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if stored.rows_affected() == 0 {
                outcomes.push(EventOutcome::Duplicate);
                continue;
            }
            let Some(m) = target else {
                outcomes.push(EventOutcome::Applied { message_found: false });
                continue;
            };
            apply_to_message(&mut tx, e, m, now).await?;
            outcomes.push(EventOutcome::Applied { message_found: true });
        }
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

async fn apply_to_message(
    tx: &mut sqlx::AnyConnection,
    e: &IncomingEvent,
    m: &EventTarget,
    now: i64,
) -> Result<(), sqlx::Error> {
    if let Some(new_status) = e.new_status {
        // Forward only, decided in the statement itself so concurrent events
        // cannot move a message backwards.
        sqlx::query(&format!(
            "UPDATE messages SET status = $2, provider_id = COALESCE(provider_id, $3), updated_at = $4 \
             WHERE id = $1 AND {} < $5",
            rank_sql("status")
        ))
        .bind(&m.id)
        .bind(new_status)
        .bind(&e.provider_email_id)
        .bind(now)
        .bind(i64::from(status_rank(new_status)))
        .execute(&mut *tx)
        .await?;
    }
    if let Some(reason) = e.suppress {
        let email_normalized = m.to_email.to_lowercase();
        sqlx::query(
            "INSERT INTO suppressions (tenant_id, email_normalized, reason, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, email_normalized) DO UPDATE SET reason = CASE \
               WHEN suppressions.reason = 'complained' THEN suppressions.reason ELSE excluded.reason END",
        )
        .bind(&m.tenant_id)
        .bind(&email_normalized)
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // A complaint outranks a bounce; neither is undone by the other.
        sqlx::query(
            "UPDATE contacts SET status = $3, updated_at = $4 \
             WHERE tenant_id = $1 AND email_normalized = $2 AND status <> 'complained'",
        )
        .bind(&m.tenant_id)
        .bind(&email_normalized)
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_delivery_never_outranks_a_bounce_or_complaint() {
        for later in ["sent", "delivered", "opened", "clicked"] {
            assert!(status_rank(later) < status_rank("bounced"), "{later}");
            assert!(status_rank(later) < status_rank("complained"), "{later}");
        }
        assert!(status_rank("bounced") < status_rank("complained"));
    }

    #[test]
    fn every_provider_status_outranks_dead_and_cancelled() {
        for provider_side in ["sent", "delivered", "opened", "clicked", "bounced", "failed", "suppressed", "complained"]
        {
            assert!(status_rank("dead") < status_rank(provider_side), "{provider_side}");
            assert!(status_rank("cancelled") < status_rank(provider_side), "{provider_side}");
        }
    }

    #[test]
    fn the_sql_rank_covers_every_status() {
        let sql = rank_sql("status");
        for s in MESSAGE_STATUSES {
            assert!(sql.contains(&format!("'{s}' THEN {}", status_rank(s))), "{s}");
        }
    }
}
