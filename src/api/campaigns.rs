//! Campaign history and message status.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};

use super::extract::{EmptyBody, NoBody};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::path_id;
use crate::auth::TenantAccess;
use crate::domain::TenantId;
use crate::domain::{parse_id, rfc3339, CampaignStatus, MessageStatus};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
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
    /// `scheduled`, `queued`, `sending`, `paused`, `sent`, `partially_failed`, `failed` (every message died) or `cancelled`.
    status: String,
    /// Messages per status: queued, sending, sent, delivered, opened, clicked,
    /// bounced, complained, failed, dead, suppressed, paused, cancelled.
    counts: BTreeMap<String, i64>,
    /// Recipients who unsubscribed through this campaign's one-click link.
    unsubscribed: i64,
    /// The template this campaign was sent from, and the version it keeps rendering.
    template_id: Option<String>,
    template_version: Option<i64>,
    scheduled_at: Option<String>,
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
    /// The one-click unsubscribe link this email carries in its
    /// `List-Unsubscribe` header (campaign mail, and transactional mail sent
    /// with `"unsubscribe": true`).
    unsubscribe_url: Option<String>,
    events: Vec<MessageEvent>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageEvent {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    received_at: String,
}

/// A campaign's status follows from its messages (and a pause or cancel set by
/// hand): nothing is stored that could disagree.
fn campaign_status(c: &CampaignRow, counts: &BTreeMap<String, i64>) -> CampaignStatus {
    let n = |s: MessageStatus| counts.get(s.as_str()).copied().unwrap_or(0);
    let total: i64 = counts.values().sum();
    let unsent = n(MessageStatus::Queued) + n(MessageStatus::Sending) + n(MessageStatus::Paused);
    let dead = n(MessageStatus::Dead);
    match c.state.as_deref() {
        Some("cancelled") => return CampaignStatus::Cancelled,
        Some("paused") if unsent > 0 => return CampaignStatus::Paused,
        _ => {}
    }
    if total > 0 && n(MessageStatus::Queued) == total {
        if c.scheduled_at.is_some_and(|t| t > crate::domain::now_ms()) {
            CampaignStatus::Scheduled
        } else {
            CampaignStatus::Queued
        }
    } else if unsent > 0 {
        CampaignStatus::Sending
    } else if dead > 0 && dead == total {
        CampaignStatus::Failed
    } else if dead > 0 {
        CampaignStatus::PartiallyFailed
    } else {
        CampaignStatus::Sent
    }
}

fn to_campaign(c: CampaignRow, counts: &[StatusCount], unsubscribes: &[(String, i64)]) -> Campaign {
    let mut by_status: BTreeMap<String, i64> = MessageStatus::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
    for sc in counts.iter().filter(|sc| sc.campaign_id.as_deref() == Some(c.id.as_str())) {
        *by_status.entry(sc.status.clone()).or_default() += sc.n;
    }
    Campaign {
        status: campaign_status(&c, &by_status).as_str().to_owned(),
        scheduled_at: c.scheduled_at.map(rfc3339),
        counts: by_status,
        unsubscribed: unsubscribes.iter().find(|(id, _)| *id == c.id).map_or(0, |(_, n)| *n),
        template_id: c.template_id,
        template_version: c.template_version,
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
        .routes(routes!(pause_campaign))
        .routes(routes!(resume_campaign))
        .routes(routes!(cancel_campaign))
        .routes(routes!(campaign_messages))
        .routes(routes!(get_message))
}

/// Campaign history, newest first.
#[utoipa::path(get, path = "/customers/{id}/campaigns", tag = "campaigns", params(("id" = String, Path)),
    responses((status = 200, body = [Campaign])))]
async fn list_campaigns(t: TenantAccess, State(state): State<AppState>) -> ApiResult<Json<Vec<Campaign>>> {
    Ok(Json(list(&state, &t.tenant_id).await?))
}

/// A customer's campaigns, newest first (the API and the dashboard).
pub(crate) async fn list(state: &AppState, tenant_id: &TenantId) -> ApiResult<Vec<Campaign>> {
    let rows = state.store.campaigns(tenant_id).await?;
    let counts = state.store.campaign_status_counts(tenant_id, None).await?;
    let unsubscribes = state.store.campaign_unsubscribes(tenant_id, None).await?;
    Ok(rows.into_iter().map(|c| to_campaign(c, &counts, &unsubscribes)).collect())
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
    Ok(Json(campaign_view(&state, &t.tenant_id, &id).await?))
}

pub(crate) async fn campaign_view(state: &AppState, tenant_id: &TenantId, id: &str) -> ApiResult<Campaign> {
    let row = state.store.campaign(tenant_id, id).await?.ok_or(ApiError::NotFound("campaign"))?;
    let counts = state.store.campaign_status_counts(tenant_id, Some(id)).await?;
    let unsubscribes = state.store.campaign_unsubscribes(tenant_id, Some(id)).await?;
    Ok(to_campaign(row, &counts, &unsubscribes))
}

/// Pause a campaign: nothing more of it is claimed; batches already with the provider finish.
#[utoipa::path(post, path = "/customers/{id}/campaigns/{cid}/pause", tag = "campaigns", params(("id" = String, Path), ("cid" = String, Path)),
    request_body(content = NoBody, description = "none, or `{}`"),
    responses((status = 200, body = Campaign), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn pause_campaign(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    _: EmptyBody,
) -> ApiResult<Json<Campaign>> {
    Ok(Json(pause(&state, &t.tenant_id, &ids.1).await?))
}

/// Pauses a campaign (the API and the dashboard).
pub(crate) async fn pause(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> ApiResult<Campaign> {
    let id = path_id(raw_id, "campaign")?;
    let current = state.store.campaign(tenant_id, &id).await?.ok_or(ApiError::NotFound("campaign"))?;
    if current.state.as_deref() == Some("cancelled") {
        return Err(ApiError::conflict("campaign_cancelled", "a cancelled campaign cannot be paused"));
    }
    state.store.pause_campaign(tenant_id, &id).await?;
    tracing::info!(tenant = %tenant_id, campaign = %id, "campaign paused");
    campaign_view(state, tenant_id, &id).await
}

/// Resume a paused campaign where it stopped.
#[utoipa::path(post, path = "/customers/{id}/campaigns/{cid}/resume", tag = "campaigns", params(("id" = String, Path), ("cid" = String, Path)),
    request_body(content = NoBody, description = "none, or `{}`"),
    responses((status = 200, body = Campaign), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn resume_campaign(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    _: EmptyBody,
) -> ApiResult<Json<Campaign>> {
    Ok(Json(resume(&state, &t.tenant_id, &ids.1).await?))
}

/// Resumes a paused campaign (the API and the dashboard).
pub(crate) async fn resume(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> ApiResult<Campaign> {
    let id = path_id(raw_id, "campaign")?;
    let current = state.store.campaign(tenant_id, &id).await?.ok_or(ApiError::NotFound("campaign"))?;
    if current.state.as_deref() != Some("paused") {
        return Err(ApiError::conflict("campaign_not_paused", "only a paused campaign can be resumed"));
    }
    state.store.resume_campaign(tenant_id, &id).await?;
    state.wake.notify_waiters();
    tracing::info!(tenant = %tenant_id, campaign = %id, "campaign resumed");
    campaign_view(state, tenant_id, &id).await
}

/// Cancel a campaign: every message not yet handed to the provider is cancelled.
#[utoipa::path(post, path = "/customers/{id}/campaigns/{cid}/cancel", tag = "campaigns", params(("id" = String, Path), ("cid" = String, Path)),
    request_body(content = NoBody, description = "none, or `{}`"),
    responses((status = 200, body = Campaign), (status = 404, body = crate::error::ErrorBody)))]
async fn cancel_campaign(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    _: EmptyBody,
) -> ApiResult<Json<Campaign>> {
    Ok(Json(cancel(&state, &t.tenant_id, &ids.1).await?))
}

/// Cancels a campaign (the API and the dashboard).
pub(crate) async fn cancel(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> ApiResult<Campaign> {
    let id = path_id(raw_id, "campaign")?;
    state.store.campaign(tenant_id, &id).await?.ok_or(ApiError::NotFound("campaign"))?;
    state.store.cancel_campaign(tenant_id, &id).await?;
    tracing::info!(tenant = %tenant_id, campaign = %id, "campaign cancelled");
    campaign_view(state, tenant_id, &id).await
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

#[derive(Serialize, ToSchema)]
pub struct MessageSummary {
    email_id: String,
    contact_id: String,
    to: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    /// The one-click unsubscribe link the email carries in its `List-Unsubscribe` header.
    unsubscribe_url: Option<String>,
    updated_at: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessagePage {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<String>,
    /// The `contact_id` of the last message of the previous page.
    after: Option<String>,
}

/// A campaign's messages, one per recipient, a page at a time (`Link: <...>; rel="next"`).
#[utoipa::path(get, path = "/customers/{id}/campaigns/{cid}/messages", tag = "campaigns",
    params(("id" = String, Path), ("cid" = String, Path), MessagePage),
    responses((status = 200, body = [MessageSummary]), (status = 404, body = crate::error::ErrorBody)))]
async fn campaign_messages(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    page: Result<Query<MessagePage>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Vec<MessageSummary>>)> {
    let Query(page) = page.map_err(|e| ApiError::validation(e.body_text()))?;
    let id = path_id(&ids.1, "campaign")?;
    state.store.campaign(&t.tenant_id, &id).await?.ok_or(ApiError::NotFound("campaign"))?;
    let limit = super::page_limit(page.limit.as_deref())?;
    let after = match page.after.as_deref().filter(|a| !a.is_empty()) {
        None => String::new(),
        Some(raw) => parse_id(raw).ok_or_else(|| ApiError::validation("`after` must be a contact id"))?,
    };
    let mut rows = state.store.campaign_messages(&t.tenant_id, &id, &after, limit).await?;
    let mut headers = HeaderMap::new();
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        if let Some((last, _)) = rows.last() {
            let next = format!(
                "</customers/{}/campaigns/{id}/messages?limit={limit}&after={last}>; rel=\"next\"",
                t.tenant_id
            );
            if let Ok(v) = HeaderValue::from_str(&next) {
                headers.insert(header::LINK, v);
            }
        }
    }
    let out = rows
        .into_iter()
        .map(|(contact_id, m)| MessageSummary {
            unsubscribe_url: state.renderer.links().url(&m.id),
            email_id: m.id,
            contact_id,
            to: m.to_email,
            status: m.status,
            attempts: m.attempts,
            last_error: m.last_error,
            updated_at: rfc3339(m.updated_at),
        })
        .collect();
    Ok((headers, Json(out)))
}

/// One message: status, attempts, last error, provider id, and the delivery events received for it.
#[utoipa::path(get, path = "/customers/{id}/messages/{email_id}", tag = "campaigns", params(("id" = String, Path), ("email_id" = String, Path)),
    responses((status = 200, body = Message), (status = 404, body = crate::error::ErrorBody)))]
async fn get_message(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<Message>> {
    Ok(Json(message_view(&state, &t.tenant_id, &ids.1).await?))
}

/// One message with its events (the API and the dashboard).
pub(crate) async fn message_view(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> ApiResult<Message> {
    let id = path_id(raw_id, "message")?;
    let m = state.store.message(tenant_id, &id).await?.ok_or(ApiError::NotFound("message"))?;
    let events = state.store.message_events(&m.id).await?;
    let unsubscribe_url =
        (m.campaign_id.is_some() || m.list_unsubscribe == Some(1)).then(|| state.renderer.links().url(&m.id)).flatten();
    Ok(Message {
        unsubscribe_url,
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
    })
}
