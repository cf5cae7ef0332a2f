//! The suppression list: addresses a customer never mails again.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::ApiJson;
use crate::auth::TenantAccess;
use crate::domain::{rfc3339, EmailAddress, TenantId};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{SuppressionRow, Unsuppress};

/// Most addresses one request may add.
const ADD_MAX: usize = 1000;
const REASONS: [&str; 6] = ["bounced", "soft_bounced", "complained", "unsubscribed", "manual", "automation"];

#[derive(Serialize, ToSchema)]
pub struct Suppression {
    /// The address, lower-cased.
    email: String,
    /// `bounced`, `soft_bounced` (repeated transient bounces), `complained`, `unsubscribed` or `manual`.
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
    let reason = match params.reason.as_deref().filter(|r| !r.is_empty()) {
        Some(r) if !REASONS.contains(&r) => {
            return Err(ApiError::validation(format!("`reason` must be one of {}", REASONS.join(", "))))
        }
        r => r,
    };
    let after = params.after.unwrap_or_default().to_lowercase();
    crate::domain::check_single_line(&after, "after").map_err(ApiError::validation)?;
    let mut rows = state.store.suppressions(&t.tenant_id, reason, &after, limit).await?;
    let mut headers = HeaderMap::new();
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        if let Some(last) = rows.last() {
            let mut next = url::Url::parse("http://x/").map_err(|e| ApiError::BadRequest(e.to_string()))?;
            next.set_path(&format!("/customers/{}/suppressions", t.tenant_id));
            next.query_pairs_mut()
                .append_pair("limit", &limit.to_string())
                .append_pair("after", &last.email_normalized);
            if let Some(r) = reason {
                next.query_pairs_mut().append_pair("reason", r);
            }
            let link = format!("<{}?{}>; rel=\"next\"", next.path(), next.query().unwrap_or_default());
            if let Ok(v) = HeaderValue::from_str(&link) {
                headers.insert(header::LINK, v);
            }
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
    let added = add(&state, &t.tenant_id, &input.emails).await?;
    Ok((StatusCode::CREATED, Json(SuppressionsAdded { added })))
}

/// Suppresses addresses by hand (reason `manual`, source `api`): what `POST
/// /customers/{id}/suppressions` does, and the dashboard's form. Returns how
/// many were newly suppressed.
pub(crate) async fn add(state: &AppState, tenant_id: &TenantId, raw: &[String]) -> ApiResult<u64> {
    if raw.is_empty() || raw.len() > ADD_MAX {
        return Err(ApiError::validation(format!("`emails` must hold 1 to {ADD_MAX} addresses")));
    }
    let mut emails = Vec::with_capacity(raw.len());
    for (i, raw) in raw.iter().enumerate() {
        let email = EmailAddress::parse(raw)
            .map_err(|e| ApiError::Invalid { code: "invalid_email", message: format!("emails[{i}]: {e}") })?;
        emails.push(email.normalized());
    }
    emails.sort();
    emails.dedup();
    Ok(state.store.add_suppressions(tenant_id, &emails, "manual", "api").await?)
}

/// Take an address off the list; its contact, if the entry had unsubscribed it, is subscribed again.
/// A `complained` entry needs `?force=true`.
#[utoipa::path(delete, path = "/customers/{id}/suppressions/{email}", tag = "suppressions",
    params(("id" = String, Path), ("email" = String, Path), RemoveParams),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody, description = "a complaint, without force")))]
async fn remove_suppression(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    params: Result<Query<RemoveParams>, QueryRejection>,
) -> ApiResult<StatusCode> {
    let email = ids.1;
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    remove(&state, &t.tenant_id, &email, params.force.unwrap_or(false)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Takes an address off the tenant's list: a `complained` entry only with
/// `force` (409 `complaint_needs_force` otherwise); 404 when it is not there.
pub(crate) async fn remove(state: &AppState, tenant_id: &TenantId, email: &str, force: bool) -> ApiResult<()> {
    let email = EmailAddress::parse(email).map_err(|_| ApiError::NotFound("suppression"))?;
    match state.store.remove_suppression(tenant_id, &email.normalized(), force).await? {
        Unsuppress::Removed => Ok(()),
        Unsuppress::NotFound => Err(ApiError::NotFound("suppression")),
        Unsuppress::NeedsForce => Err(ApiError::conflict(
            "complaint_needs_force",
            "this address complained (marked mail as spam); remove it with ?force=true only if the recipient asked to be mailed again",
        )),
    }
}
