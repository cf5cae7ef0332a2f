//! Campaign history and message status.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};

use super::extract::{EmptyBody, NoBody, OptionalJson};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use super::paging::next_page;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::path_id;
use crate::auth::TenantAccess;
use crate::domain::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::service::campaigns;
use crate::state::AppState;

pub use crate::service::campaigns::{Campaign, Message};

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
    Ok(Json(campaigns::list(&state, &t.tenant_id).await?))
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
    Ok(Json(campaigns::campaign_view(&state, &t.tenant_id, &id).await?))
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
    Ok(Json(campaigns::pause(&state, &t.tenant_id, &ids.1).await?))
}

/// What a resume may change.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ResumeIn {
    /// A version of the campaign's template to render from now on (e.g. one
    /// that fixes a `render_failing` pause). It applies to messages not yet
    /// claimed; batches already recorded retry with the content they were
    /// claimed with.
    #[schema(minimum = 1)]
    template_version: Option<i64>,
}

/// Resume a paused campaign where it stopped, optionally with a new version of its template.
#[utoipa::path(post, path = "/customers/{id}/campaigns/{cid}/resume", tag = "campaigns", params(("id" = String, Path), ("cid" = String, Path)),
    request_body(content = Option<ResumeIn>, description = "none, `{}`, or `{\"template_version\": n}`"),
    responses((status = 200, body = Campaign), (status = 404, body = crate::error::ErrorBody, description = "no such campaign, or no such version of its template"),
        (status = 409, body = crate::error::ErrorBody, description = "not paused, or batches in flight that the version would change"),
        (status = 422, body = crate::error::ErrorBody, description = "an unknown field, or a version for a campaign not sent from a template")))]
async fn resume_campaign(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    OptionalJson(input): OptionalJson<ResumeIn>,
) -> ApiResult<Json<Campaign>> {
    Ok(Json(campaigns::resume_with(&state, &t.tenant_id, &ids.1, input.template_version).await?))
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
    Ok(Json(campaigns::cancel(&state, &t.tenant_id, &ids.1).await?))
}

/// Delete a campaign record. Its unsent messages are dropped; mail already sent cannot be recalled.
#[utoipa::path(delete, path = "/customers/{id}/campaigns/{cid}", tag = "campaigns", params(("id" = String, Path), ("cid" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_campaign(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    campaigns::delete(&state, &t.tenant_id, &ids.1).await?;
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
    /// The preference centre the email links to (`/p/{token}`).
    preferences_url: Option<String>,
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
    let (id, limit, mut rows) =
        campaigns::messages(&state, &t.tenant_id, &ids.1, page.limit.as_deref(), page.after.as_deref()).await?;
    let mut headers = HeaderMap::new();
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        if let Some((last, _)) = rows.last() {
            let path = format!("/customers/{}/campaigns/{id}/messages", t.tenant_id);
            headers = next_page(&path, &[("limit", Some(&limit.to_string())), ("after", Some(last))]);
        }
    }
    let out = rows
        .into_iter()
        .map(|(contact_id, m)| (contact_id, state.renderer.links().urls(&m.id), m))
        .map(|(contact_id, links, m)| MessageSummary {
            unsubscribe_url: links.as_ref().map(|l| l.unsubscribe.clone()),
            preferences_url: links.map(|l| l.preferences),
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
    Ok(Json(campaigns::message_view(&state, &t.tenant_id, &ids.1).await?))
}
