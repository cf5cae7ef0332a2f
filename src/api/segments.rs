//! Segments: named groups of a customer's contacts. A static segment holds
//! the contacts added to it; a dynamic one holds a filter (see
//! `domain::filter` for the grammar), evaluated when a campaign is enqueued.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::ApiJson;
use crate::auth::TenantAccess;
use crate::error::ApiResult;
use crate::service::segments;
use crate::state::AppState;

pub use crate::service::segments::{MembersChanged, Segment};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentIn {
    name: String,
    /// Makes the segment dynamic: its members are the contacts matching this
    /// filter when a campaign is enqueued (members cannot be added to it).
    ///
    /// A filter tree, e.g. `{"all": [{"tag": "premium"}, {"attribute": "plan", "op": "eq", "value": "pro"},
    /// {"not": {"event": "opened", "within_days": 30}}]}`.
    ///
    /// Nodes: `{"all": [..]}`, `{"any": [..]}` (non-empty), `{"not": node}`, `{"tag": "t"}`,
    /// `{"attribute": name, "op", "value"}` (name `[A-Za-z0-9_]{1,64}`),
    /// `{"field": "created_at|email|first_name|last_name|status", "op", "value"}`,
    /// `{"event": "delivered|opened|clicked|bounced|complained", "campaign_id"?, "within_days"?}`.
    /// Ops: `eq ne lt lte gt gte contains starts_with exists in`. Strings compare with
    /// string attributes (code-point order), numbers with numbers, booleans (`eq`/`ne`)
    /// with booleans; a missing attribute matches only `not exists`; `ne` needs the
    /// attribute present. `created_at` takes epoch ms or RFC 3339. At most 10 levels
    /// and 50 conditions; `in` takes 1 to 100 values. An invalid filter is a 422
    /// naming its path, e.g. `filter.all[2].op`.
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentPatch {
    name: Option<String>,
    /// A dynamic segment's new filter (a static segment takes none).
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembersIn {
    contact_ids: Vec<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_segment, list_segments))
        .routes(routes!(get_segment, delete_segment, patch_segment))
        .routes(routes!(add_members, remove_members))
}

/// Create a segment.
#[utoipa::path(post, path = "/customers/{id}/segments", tag = "segments", params(("id" = String, Path)), request_body = SegmentIn,
    responses((status = 201, body = Segment), (status = 422, body = crate::error::ErrorBody, description = "invalid filter, with its path")))]
async fn create_segment(
    t: TenantAccess,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SegmentIn>,
) -> ApiResult<(StatusCode, Json<Segment>)> {
    Ok((StatusCode::CREATED, Json(segments::create(&state, &t.tenant_id, &body.name, body.filter.as_ref()).await?)))
}

/// List segments with their sizes.
#[utoipa::path(get, path = "/customers/{id}/segments", tag = "segments", params(("id" = String, Path)),
    responses((status = 200, body = [Segment])))]
async fn list_segments(t: TenantAccess, State(state): State<AppState>) -> ApiResult<Json<Vec<Segment>>> {
    Ok(Json(segments::list(&state, &t.tenant_id).await?))
}

/// Get a segment with its contacts (the first 1000).
#[utoipa::path(get, path = "/customers/{id}/segments/{sid}", tag = "segments", params(("id" = String, Path), ("sid" = String, Path)),
    responses((status = 200, body = Segment), (status = 404, body = crate::error::ErrorBody)))]
async fn get_segment(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<Segment>> {
    Ok(Json(segments::get(&state, &t.tenant_id, &ids.1).await?))
}

/// Rename a segment, or replace a dynamic segment's filter.
#[utoipa::path(patch, path = "/customers/{id}/segments/{sid}", tag = "segments", params(("id" = String, Path), ("sid" = String, Path)),
    request_body = SegmentPatch,
    responses((status = 200, body = Segment), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "a filter for a static segment"),
        (status = 422, body = crate::error::ErrorBody)))]
async fn patch_segment(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    ApiJson(body): ApiJson<SegmentPatch>,
) -> ApiResult<Json<Segment>> {
    Ok(Json(segments::update(&state, &t.tenant_id, &ids.1, body.name.as_deref(), body.filter.as_ref()).await?))
}

/// Delete a segment (its contacts stay).
#[utoipa::path(delete, path = "/customers/{id}/segments/{sid}", tag = "segments", params(("id" = String, Path), ("sid" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_segment(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    segments::delete(&state, &t.tenant_id, &ids.1).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add contacts to a segment.
#[utoipa::path(post, path = "/customers/{id}/segments/{sid}/contacts", tag = "segments",
    params(("id" = String, Path), ("sid" = String, Path)), request_body = MembersIn,
    responses((status = 200, body = MembersChanged), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "the segment is dynamic")))]
async fn add_members(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    ApiJson(body): ApiJson<MembersIn>,
) -> ApiResult<Json<MembersChanged>> {
    let contacts = segments::member_ids(&body.contact_ids)?;
    Ok(Json(segments::change_members(&state, &t.tenant_id, &ids.1, &contacts, true).await?))
}

/// Remove contacts from a segment.
#[utoipa::path(delete, path = "/customers/{id}/segments/{sid}/contacts", tag = "segments",
    params(("id" = String, Path), ("sid" = String, Path)), request_body = MembersIn,
    responses((status = 200, body = MembersChanged), (status = 404, body = crate::error::ErrorBody)))]
async fn remove_members(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    ApiJson(body): ApiJson<MembersIn>,
) -> ApiResult<Json<MembersChanged>> {
    let contacts = segments::member_ids(&body.contact_ids)?;
    Ok(Json(segments::change_members(&state, &t.tenant_id, &ids.1, &contacts, false).await?))
}
