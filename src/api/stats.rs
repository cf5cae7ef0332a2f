//! Delivery analytics: a campaign's figures, and a customer's (or, for the
//! operator, everyone's) figures per hour or day. Read from counters kept in
//! the transactions that store the events, never from a scan of them.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{Admin, TenantAccess};
use crate::domain::TenantId;
use crate::error::{ApiError, ApiResult};
use crate::service::stats;
use crate::state::AppState;

pub use crate::service::stats::{CampaignStats, Series};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SeriesParams {
    /// Start (RFC 3339), rounded down to its bucket; default: 7 days (`day`) or 48 hours (`hour`) before `to`.
    from: Option<String>,
    /// End, exclusive (RFC 3339); default now.
    to: Option<String>,
    /// `hour` or `day` (UTC; default `day`).
    bucket: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(campaign_stats)).routes(routes!(customer_stats)).routes(routes!(all_stats))
}

/// A campaign's delivery figures and rates, and its most clicked links.
/// Each figure counts messages once (unique opens, unique clicks); duplicate
/// and out-of-order provider events do not change them. Opens are directional:
/// Apple Mail Privacy Protection pre-fetches images, inflating opens.
#[utoipa::path(get, path = "/customers/{id}/campaigns/{cid}/stats", tag = "stats",
    params(("id" = String, Path), ("cid" = String, Path)),
    responses((status = 200, body = CampaignStats), (status = 404, body = crate::error::ErrorBody)))]
async fn campaign_stats(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<CampaignStats>> {
    Ok(Json(stats::campaign(&state, &t.tenant_id, &ids.1).await?))
}

/// The customer's delivery figures per hour or day (UTC), for charts. A
/// message counts in the bucket of its first event of each kind. Opens are
/// directional (Apple Mail Privacy Protection pre-fetches images).
#[utoipa::path(get, path = "/customers/{id}/stats", tag = "stats", params(("id" = String, Path), SeriesParams),
    responses((status = 200, body = Series), (status = 422, body = crate::error::ErrorBody)))]
async fn customer_stats(
    t: TenantAccess,
    State(state): State<AppState>,
    params: Result<Query<SeriesParams>, QueryRejection>,
) -> ApiResult<Json<Series>> {
    series(&state, Some(&t.tenant_id), params).await
}

/// Every customer's delivery figures together, per hour or day (admin key only).
/// Opens are directional (Apple Mail Privacy Protection pre-fetches images).
#[utoipa::path(get, path = "/stats", tag = "stats", params(SeriesParams),
    responses((status = 200, body = Series), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
async fn all_stats(
    _admin: Admin,
    State(state): State<AppState>,
    params: Result<Query<SeriesParams>, QueryRejection>,
) -> ApiResult<Json<Series>> {
    series(&state, None, params).await
}

async fn series(
    state: &AppState,
    tenant: Option<&TenantId>,
    params: Result<Query<SeriesParams>, QueryRejection>,
) -> ApiResult<Json<Series>> {
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    let series =
        stats::series(state, tenant, params.bucket.as_deref(), params.from.as_deref(), params.to.as_deref()).await?;
    Ok(Json(series))
}
