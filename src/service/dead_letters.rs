//! Dead letters: messages the provider refused for good, or that ran out of
//! attempts. Listed with their reason, and queued again once the cause is fixed.

use serde::Serialize;
use utoipa::ToSchema;

use super::{parse_id, Error, Result};
use crate::domain::{rfc3339, TenantId};
use crate::state::AppState;
use crate::store::MessageRow;

const LIST_LIMIT: i64 = 1000;

#[derive(Serialize, ToSchema)]
pub struct DeadLetter {
    email_id: String,
    customer_id: String,
    campaign_id: Option<String>,
    to: String,
    /// Why it was given up: the provider's error name and message.
    reason: Option<String>,
    attempts: i64,
    last_error: Option<String>,
    dead_at: String,
}

impl From<MessageRow> for DeadLetter {
    fn from(m: MessageRow) -> Self {
        Self {
            email_id: m.id,
            customer_id: m.tenant_id,
            campaign_id: m.campaign_id,
            to: m.to_email,
            reason: m.last_error.clone(),
            attempts: m.attempts,
            last_error: m.last_error,
            dead_at: rfc3339(m.updated_at),
        }
    }
}

fn optional_id(raw: Option<&str>, what: &'static str) -> Result<Option<String>> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(r) => {
            crate::domain::parse_id(r).map(Some).ok_or_else(|| Error::validation(format!("`{what}` must be an id")))
        }
    }
}

/// Dead letters, newest first: one tenant's (`tenant`), or for the operator
/// any tenant's (`customer_id`), optionally of one campaign.
pub async fn list(
    state: &AppState,
    tenant: Option<&TenantId>,
    customer_id: Option<&str>,
    campaign_id: Option<&str>,
) -> Result<Vec<DeadLetter>> {
    let customer = match tenant {
        Some(t) => Some(t.clone()),
        None => optional_id(customer_id, "customer_id")?.map(TenantId::from_stored),
    };
    let campaign = optional_id(campaign_id, "campaign_id")?;
    let rows = state.store.dead_letters(customer.as_ref(), campaign.as_deref(), LIST_LIMIT).await?;
    Ok(rows.into_iter().map(DeadLetter::from).collect())
}

/// Queues one dead letter again (the API and the dashboard).
pub async fn retry_one(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<u64> {
    let id = parse_id(raw_id, "dead letter")?;
    let requeued = state.store.requeue_dead_letters(tenant_id, Some(&id), None).await?;
    if requeued == 0 {
        return Err(Error::NotFound("dead letter"));
    }
    state.wake.notify_waiters();
    Ok(requeued)
}

/// Queues every dead letter of one of the tenant's campaigns again.
pub async fn retry_campaign(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<u64> {
    let cid = parse_id(raw_id, "campaign")?;
    state.store.campaign(tenant_id, &cid).await?.ok_or(Error::NotFound("campaign"))?;
    let requeued = state.store.requeue_dead_letters(tenant_id, None, Some(&cid)).await?;
    state.wake.notify_waiters();
    Ok(requeued)
}
