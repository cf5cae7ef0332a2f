//! Campaign history and message status.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::path_id;
use crate::app::AppState;
use crate::auth::TenantAccess;
use crate::domain::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::store::{CampaignRow, StatusCount};

#[derive(Serialize, ToSchema)]
pub struct Campaign {
    id: String,
    customer_id: String,
    subject: String,
    from: String,
    reply_to: Option<String>,
    /// `{}` (everyone), `{"tag": ...}` or `{"segment_id": ...}`.
    #[schema(value_type = Object)]
    targeting: serde_json::Value,
    /// Recipients queued when the campaign was created.
    sent_to: i64,
    /// `queued`, `sending`, `sent` or `partially_failed`, from its messages.
    status: String,
    /// Messages per status: queued, sending, sent, delivered, opened, clicked, bounced, complained, failed, suppressed.
    counts: BTreeMap<String, i64>,
    created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct Message {
    email_id: String,
    customer_id: String,
    campaign_id: Option<String>,
    to: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    provider_id: Option<String>,
    created_at: String,
    updated_at: String,
    events: Vec<MessageEvent>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageEvent {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    received_at: String,
}

const STATUSES: [&str; 10] =
    ["queued", "sending", "sent", "delivered", "opened", "clicked", "bounced", "complained", "failed", "suppressed"];

/// A campaign's status follows from its messages: nothing is stored that could disagree.
fn campaign_status(counts: &BTreeMap<String, i64>) -> &'static str {
    let n = |s: &str| counts.get(s).copied().unwrap_or(0);
    let total: i64 = counts.values().sum();
    if n("queued") == total && total > 0 {
        "queued"
    } else if n("queued") + n("sending") > 0 {
        "sending"
    } else if n("failed") > 0 {
        "partially_failed"
    } else {
        "sent"
    }
}

fn to_campaign(c: CampaignRow, counts: &[StatusCount]) -> Campaign {
    let mut by_status: BTreeMap<String, i64> = STATUSES.iter().map(|s| ((*s).to_owned(), 0)).collect();
    for sc in counts.iter().filter(|sc| sc.campaign_id.as_deref() == Some(c.id.as_str())) {
        *by_status.entry(sc.status.clone()).or_default() += sc.n;
    }
    Campaign {
        status: campaign_status(&by_status).to_owned(),
        counts: by_status,
        targeting: serde_json::from_str(&c.targeting).unwrap_or_default(),
        id: c.id,
        customer_id: c.tenant_id,
        subject: c.subject,
        from: c.from_address,
        reply_to: c.reply_to,
        sent_to: c.recipient_count,
        created_at: rfc3339(c.created_at),
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_campaigns))
        .routes(routes!(get_campaign, delete_campaign))
        .routes(routes!(get_message))
}

/// Campaign history, newest first.
#[utoipa::path(get, path = "/customers/{id}/campaigns", tag = "campaigns", params(("id" = String, Path)),
    responses((status = 200, body = [Campaign])))]
async fn list_campaigns(t: TenantAccess, State(state): State<AppState>) -> ApiResult<Json<Vec<Campaign>>> {
    let rows = state.store.campaigns(&t.tenant_id).await?;
    let counts = state.store.campaign_status_counts(&t.tenant_id, None).await?;
    Ok(Json(rows.into_iter().map(|c| to_campaign(c, &counts)).collect()))
}

/// One campaign with its status and per-status message counts.
#[utoipa::path(get, path = "/customers/{id}/campaigns/{cid}", tag = "campaigns", params(("id" = String, Path), ("cid" = String, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = crate::error::ErrorBody)))]
async fn get_campaign(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<Campaign>> {
    let id = path_id(&ids.1, "campaign")?;
    let row = state.store.campaign(&t.tenant_id, &id).await?.ok_or(ApiError::NotFound("campaign"))?;
    let counts = state.store.campaign_status_counts(&t.tenant_id, Some(&id)).await?;
    Ok(Json(to_campaign(row, &counts)))
}

/// Delete a campaign record. Its unsent messages are dropped; mail already sent cannot be recalled.
#[utoipa::path(delete, path = "/customers/{id}/campaigns/{cid}", tag = "campaigns", params(("id" = String, Path), ("cid" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_campaign(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_id(&ids.1, "campaign")?;
    if !state.store.delete_campaign(&t.tenant_id, &id).await? {
        return Err(ApiError::NotFound("campaign"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// One message: status, attempts, last error, provider id, and the delivery events received for it.
#[utoipa::path(get, path = "/customers/{id}/messages/{email_id}", tag = "campaigns", params(("id" = String, Path), ("email_id" = String, Path)),
    responses((status = 200, body = Message), (status = 404, body = crate::error::ErrorBody)))]
async fn get_message(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<Message>> {
    let id = path_id(&ids.1, "message")?;
    let m = state.store.message(&t.tenant_id, &id).await?.ok_or(ApiError::NotFound("message"))?;
    let events = state.store.message_events(&m.id).await?;
    Ok(Json(Message {
        email_id: m.id,
        customer_id: m.tenant_id,
        campaign_id: m.campaign_id,
        to: m.to_email,
        status: m.status,
        attempts: m.attempts,
        last_error: m.last_error,
        provider_id: m.provider_id,
        created_at: rfc3339(m.created_at),
        updated_at: rfc3339(m.updated_at),
        events: events
            .into_iter()
            .map(|e| MessageEvent { id: e.svix_id, event_type: e.event_type, received_at: rfc3339(e.received_at) })
            .collect(),
    }))
}
