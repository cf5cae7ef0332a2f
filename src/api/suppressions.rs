//! The suppression list: addresses a customer never mails again.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::paging::next_page;
use super::ApiJson;
use crate::auth::TenantAccess;
use crate::domain::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::service::suppressions;
use crate::state::AppState;
use crate::store::SuppressionRow;

#[derive(Serialize, ToSchema)]
pub struct Suppression {
    /// The address, lower-cased.
    email: String,
    /// `bounced`, `soft_bounced` (repeated transient bounces), `complained`, `unsubscribed`, `manual`, `automation` or `erased`
    /// (an address the customer erased that came back: see `POST .../erase`).
    reason: String,
    /// What caused it: the message or campaign id, `api` or `import`.
    source: Option<String>,
    created_at: String,
}

impl From<SuppressionRow> for Suppression {
    fn from(s: SuppressionRow) -> Self {
        Self { email: s.email_normalized, reason: s.reason, source: s.source, created_at: rfc3339(s.created_at) }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only entries with this reason.
    reason: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<String>,
    /// The last address of the previous page.
    after: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressionsIn {
    /// Addresses to suppress (reason `manual`, source `api`), at most 1,000.
    emails: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SuppressionsAdded {
    /// Addresses newly suppressed (those already on the list keep their entry).
    added: u64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RemoveParams {
    /// Needed to remove a `complained` entry.
    force: Option<bool>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_suppressions, add_suppressions)).routes(routes!(remove_suppression))
}

/// The suppression list in address order, a page at a time; `Link: <...>; rel="next"` points to the next page.
#[utoipa::path(get, path = "/customers/{id}/suppressions", tag = "suppressions", params(("id" = String, Path), ListParams),
    responses((status = 200, body = [Suppression])))]
async fn list_suppressions(
    t: TenantAccess,
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Vec<Suppression>>)> {
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    let limit = super::page_limit(params.limit.as_deref())?;
    let (mut rows, reason) =
        suppressions::list(&state, &t.tenant_id, params.reason.as_deref(), params.after, limit).await?;
    let mut headers = HeaderMap::new();
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        if let Some(last) = rows.last() {
            let path = format!("/customers/{}/suppressions", t.tenant_id);
            let limit = limit.to_string();
            headers = next_page(
                &path,
                &[("limit", Some(&limit)), ("after", Some(&last.email_normalized)), ("reason", reason)],
            );
        }
    }
    Ok((headers, Json(rows.into_iter().map(Suppression::from).collect())))
}

/// Suppress addresses by hand (reason `manual`): no campaign of this customer mails them again.
#[utoipa::path(post, path = "/customers/{id}/suppressions", tag = "suppressions", params(("id" = String, Path)),
    request_body = SuppressionsIn,
    responses((status = 201, body = SuppressionsAdded), (status = 422, body = crate::error::ErrorBody)))]
async fn add_suppressions(
    t: TenantAccess,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<SuppressionsIn>,
) -> ApiResult<(StatusCode, Json<SuppressionsAdded>)> {
    let added = suppressions::add(&state, &t.tenant_id, &input.emails).await?;
    Ok((StatusCode::CREATED, Json(SuppressionsAdded { added })))
}

/// Take an address off the list; its contact, if the entry had unsubscribed it, is subscribed again.
/// A `complained` entry needs `?force=true`; an `erased` one (an address the customer erased
/// that came back) is lifted only by the person's confirmed double opt-in.
#[utoipa::path(delete, path = "/customers/{id}/suppressions/{email}", tag = "suppressions",
    params(("id" = String, Path), ("email" = String, Path), RemoveParams),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "a complaint, without force; an erased address")))]
async fn remove_suppression(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    params: Result<Query<RemoveParams>, QueryRejection>,
) -> ApiResult<StatusCode> {
    let email = ids.1;
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    suppressions::remove(&state, &t.tenant_id, &email, params.force.unwrap_or(false)).await?;
    Ok(StatusCode::NO_CONTENT)
}
