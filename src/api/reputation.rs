//! The reputation guard: each customer's rolling hard-bounce and complaint
//! rates, its state (`ok`, `warning`, `paused`: campaign mail held) and the
//! history of changes; the operator's view of everyone, worst first; and the
//! admin's resume of a paused customer.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{Admin, TenantAccess};
use crate::error::ApiResult;
use crate::service::reputation;
use crate::state::AppState;

pub use crate::service::reputation::Reputation;

/// Optional body of a resume.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ResumeIn {
    /// Why (kept in the history), up to 500 characters.
    note: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_reputation)).routes(routes!(resume)).routes(routes!(all_reputations))
}

/// The customer's reputation: rolling hard-bounce rate (hard bounces / sent)
/// and complaint rate (complaints / delivered), its state, the thresholds,
/// and the history of state changes. At `paused` its campaign mail is held
/// (transactional mail continues) until the operator resumes it.
#[utoipa::path(get, path = "/customers/{id}/reputation", tag = "reputation", params(("id" = String, Path)),
    responses((status = 200, body = Reputation), (status = 404, body = crate::error::ErrorBody)))]
async fn get_reputation(t: TenantAccess, State(state): State<AppState>) -> ApiResult<Json<Reputation>> {
    Ok(Json(reputation::detail(&state, &t.tenant_id).await?))
}

/// Resume a paused customer (admin key only): its held campaign mail goes out
/// again at once, and the change is in its history. From here its window
/// starts afresh: only mail sent, bounces and complaints after the resume
/// count (the minimum sent included), so the events that paused it cannot
/// pause it again; new ones can.
#[utoipa::path(post, path = "/customers/{id}/reputation/resume", tag = "reputation", params(("id" = String, Path)),
    request_body(content = Option<ResumeIn>, description = "optional"),
    responses((status = 200, body = Reputation), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn resume(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Reputation>> {
    let tenant_id = crate::service::customers::existing(&state, &id).await?;
    let body: ResumeIn = super::extract::optional_json(&body)?;
    Ok(Json(reputation::resume_tenant(&state, &tenant_id, body.note.as_deref()).await?))
}

/// Every customer's reputation (admin key only), worst first: paused, then
/// warning, then ok; within a state, the highest rate against its threshold first.
#[utoipa::path(get, path = "/reputation", tag = "reputation",
    responses((status = 200, body = [Reputation]), (status = 403, body = crate::error::ErrorBody)))]
async fn all_reputations(_: Admin, State(state): State<AppState>) -> ApiResult<Json<Vec<Reputation>>> {
    Ok(Json(reputation::all(&state).await?))
}
