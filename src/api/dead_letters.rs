//! Dead letters: messages the provider refused for good, or that ran out of
//! attempts. Listed with their reason, and retried once the cause is fixed.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};

use super::extract::{EmptyBody, NoBody};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::path_id;
use crate::auth::{Admin, TenantAccess};
use crate::domain::TenantId;
use crate::domain::{parse_id, rfc3339};
use crate::error::{ApiError, ApiResult};
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

/// A customer's listing: its campaigns only.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TenantDeadLetterQuery {
    /// Only this campaign's dead letters.
    campaign_id: Option<String>,
}

/// The operator's listing, across customers.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// Only this campaign's dead letters.
    campaign_id: Option<String>,
    /// (Operator listing) only this customer's.
    customer_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Requeued {
    /// Messages queued again.
    requeued: u64,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_dead_letters))
        .routes(routes!(retry_dead_letter))
        .routes(routes!(retry_campaign_dead_letters))
        .routes(routes!(list_all_dead_letters))
}

fn optional_id(raw: Option<&str>, what: &'static str) -> ApiResult<Option<String>> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(r) => parse_id(r).map(Some).ok_or_else(|| ApiError::validation(format!("`{what}` must be an id"))),
    }
}

/// A customer's dead letters, newest first (at most 1000).
#[utoipa::path(get, path = "/customers/{id}/dead-letters", tag = "dead letters", params(("id" = String, Path), TenantDeadLetterQuery),
    responses((status = 200, body = [DeadLetter])))]
async fn list_dead_letters(
    t: TenantAccess,
    State(state): State<AppState>,
    q: Result<Query<TenantDeadLetterQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<DeadLetter>>> {
    let Query(q) = q.map_err(|e| ApiError::validation(e.body_text()))?;
    let campaign = optional_id(q.campaign_id.as_deref(), "campaign_id")?;
    let rows = state.store.dead_letters(Some(&t.tenant_id), campaign.as_deref(), LIST_LIMIT).await?;
    Ok(Json(rows.into_iter().map(DeadLetter::from).collect()))
}

/// Queue one dead letter again, with fresh attempts.
#[utoipa::path(post, path = "/customers/{id}/dead-letters/{message_id}/retry", tag = "dead letters",
    params(("id" = String, Path), ("message_id" = String, Path)),
    request_body(content = NoBody, description = "none, or `{}`"),
    responses((status = 202, body = Requeued), (status = 404, body = crate::error::ErrorBody)))]
async fn retry_dead_letter(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    _: EmptyBody,
) -> ApiResult<(StatusCode, Json<Requeued>)> {
    let requeued = retry_one(&state, &t.tenant_id, &ids.1).await?;
    Ok((StatusCode::ACCEPTED, Json(Requeued { requeued })))
}

/// Queues one dead letter again (the API and the dashboard).
pub(crate) async fn retry_one(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> ApiResult<u64> {
    let id = path_id(raw_id, "dead letter")?;
    let requeued = state.store.requeue_dead_letters(tenant_id, Some(&id), None).await?;
    if requeued == 0 {
        return Err(ApiError::NotFound("dead letter"));
    }
    state.wake.notify_waiters();
    Ok(requeued)
}

/// Queue every dead letter of one campaign again.
#[utoipa::path(post, path = "/customers/{id}/campaigns/{cid}/dead-letters/retry", tag = "dead letters",
    params(("id" = String, Path), ("cid" = String, Path)),
    request_body(content = NoBody, description = "none, or `{}`"),
    responses((status = 202, body = Requeued), (status = 404, body = crate::error::ErrorBody)))]
async fn retry_campaign_dead_letters(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    _: EmptyBody,
) -> ApiResult<(StatusCode, Json<Requeued>)> {
    let cid = path_id(&ids.1, "campaign")?;
    state.store.campaign(&t.tenant_id, &cid).await?.ok_or(ApiError::NotFound("campaign"))?;
    let requeued = state.store.requeue_dead_letters(&t.tenant_id, None, Some(&cid)).await?;
    state.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, Json(Requeued { requeued })))
}

/// Dead letters across every customer (operator only), newest first.
#[utoipa::path(get, path = "/dead-letters", tag = "dead letters", params(DeadLetterQuery),
    responses((status = 200, body = [DeadLetter])))]
async fn list_all_dead_letters(
    _: Admin,
    State(state): State<AppState>,
    q: Result<Query<DeadLetterQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<DeadLetter>>> {
    let Query(q) = q.map_err(|e| ApiError::validation(e.body_text()))?;
    let customer = optional_id(q.customer_id.as_deref(), "customer_id")?.map(TenantId::from_stored);
    let campaign = optional_id(q.campaign_id.as_deref(), "campaign_id")?;
    let rows = state.store.dead_letters(customer.as_ref(), campaign.as_deref(), LIST_LIMIT).await?;
    Ok(Json(rows.into_iter().map(DeadLetter::from).collect()))
}
