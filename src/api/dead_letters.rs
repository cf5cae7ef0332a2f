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

use crate::auth::{Admin, TenantAccess};
use crate::error::{ApiError, ApiResult};
use crate::service::dead_letters;
use crate::state::AppState;

pub use crate::service::dead_letters::DeadLetter;

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

/// A customer's dead letters, newest first (at most 1000).
#[utoipa::path(get, path = "/customers/{id}/dead-letters", tag = "dead letters", params(("id" = String, Path), TenantDeadLetterQuery),
    responses((status = 200, body = [DeadLetter])))]
async fn list_dead_letters(
    t: TenantAccess,
    State(state): State<AppState>,
    q: Result<Query<TenantDeadLetterQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<DeadLetter>>> {
    let Query(q) = q.map_err(|e| ApiError::validation(e.body_text()))?;
    Ok(Json(dead_letters::list(&state, Some(&t.tenant_id), None, q.campaign_id.as_deref()).await?))
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
    let requeued = dead_letters::retry_one(&state, &t.tenant_id, &ids.1).await?;
    Ok((StatusCode::ACCEPTED, Json(Requeued { requeued })))
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
    let requeued = dead_letters::retry_campaign(&state, &t.tenant_id, &ids.1).await?;
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
    let rows = dead_letters::list(&state, None, q.customer_id.as_deref(), q.campaign_id.as_deref()).await?;
    Ok(Json(rows))
}
