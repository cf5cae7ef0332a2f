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

#[derive(FromRow)]
struct Target {
    id: String,
    tenant_id: String,
    to_email: String,
}

/// Every message status, for [`rank_sql`].
const STATUSES: [&str; 13] = [
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
    let arms: String = STATUSES.iter().map(|s| format!(" WHEN '{s}' THEN {}", status_rank(s))).collect();
    format!("(CASE {column}{arms} ELSE 0 END)")
}

/// Delivery progress of a message. A status only moves to a higher rank, so a
/// late `delivered` never undoes a `bounced`, and a replay never moves anything back.
pub fn status_rank(status: &str) -> u8 {
    match status {
        "queued" | "paused" => 0,
        "sending" => 1,
        "sent" => 2,
        "delivered" => 3,
        "opened" => 4,
        "clicked" => 5,
        "suppressed" | "failed" | "bounced" | "dead" | "cancelled" => 6,
        "complained" => 7,
        _ => 0,
    }
}

impl Store {
    /// Stores the event (deduplicated on svix-id) and applies it, in one
    /// transaction: the answer to the provider is 2xx only after this commits.
    /// Side effects reach contacts only through the message's own tenant.
    pub async fn ingest_event(&self, e: &IncomingEvent) -> Result<EventOutcome, sqlx::Error> {
        // Find the message before taking the write lock: ids never change once
        // set, and the status update below is conditional, so this read is safe.
        let mut target: Option<Target> = None;
        if let Some(pid) = &e.provider_email_id {
            target = sqlx::query_as("SELECT id, tenant_id, to_email FROM messages WHERE provider_id = $1")
                .bind(pid)
                .fetch_optional(&self.pool)
                .await?;
        }
        if target.is_none() {
            if let Some(mid) = &e.message_tag {
                target = sqlx::query_as("SELECT id, tenant_id, to_email FROM messages WHERE id = $1")
                    .bind(mid)
                    .fetch_optional(&self.pool)
                    .await?;
            }
        }

        let mut tx = self.begin_write().await?;
        let now = now_ms();
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
            tx.commit().await?;
            return Ok(EventOutcome::Duplicate);
        }
        let Some(m) = target else {
            tx.commit().await?;
            return Ok(EventOutcome::Applied { message_found: false });
        };
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
        tx.commit().await?;
        Ok(EventOutcome::Applied { message_found: true })
    }

    pub async fn message_events(&self, message_id: &str) -> Result<Vec<StoredEvent>, sqlx::Error> {
        sqlx::query_as("SELECT svix_id, event_type, received_at FROM webhook_events WHERE message_id = $1 ORDER BY received_at, svix_id")
            .bind(message_id)
            .fetch_all(&self.pool)
            .await
    }
}
