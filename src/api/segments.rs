//! Segments: static, named groups of a customer's contacts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::contacts::Contact;
use super::{path_id, required_text, ApiJson};
use crate::auth::TenantAccess;
use crate::domain::TenantId;
use crate::domain::{new_id, parse_id, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::SegmentRow;

/// Most contacts shown inline by `GET /segments/{sid}`.
const INLINE_CONTACTS: i64 = 1000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentIn {
    name: String,
}

#[derive(Serialize, ToSchema)]
pub struct Segment {
    id: String,
    customer_id: String,
    name: String,
    contact_count: i64,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    contacts: Option<Vec<Contact>>,
}

impl Segment {
    fn from_row(s: SegmentRow, contacts: Option<Vec<Contact>>) -> Self {
        Self {
            id: s.id,
            customer_id: s.tenant_id,
            name: s.name,
            contact_count: s.contact_count,
            created_at: rfc3339(s.created_at),
            contacts,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembersIn {
    contact_ids: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MembersChanged {
    segment_id: String,
    /// Contacts newly added (ids of other customers' contacts, unknown ids and
    /// contacts already in the segment are skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    added_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    removed_count: Option<u64>,
    contact_count: i64,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_segment, list_segments))
        .routes(routes!(get_segment, delete_segment))
        .routes(routes!(add_members, remove_members))
}

async fn own_segment(state: &AppState, tenant_id: &TenantId, raw: &str) -> ApiResult<SegmentRow> {
    let id = path_id(raw, "segment")?;
    state.store.segment(tenant_id, &id).await?.ok_or(ApiError::NotFound("segment"))
}

fn member_ids(body: MembersIn) -> ApiResult<Vec<String>> {
    if body.contact_ids.len() > 10_000 {
        return Err(ApiError::validation("at most 10000 contact_ids per request"));
    }
    // Ids that cannot be contact ids name no contact: skip them like unknown ones.
    Ok(body.contact_ids.iter().filter_map(|id| parse_id(id)).collect())
}

/// Create a segment.
#[utoipa::path(post, path = "/customers/{id}/segments", tag = "segments", params(("id" = String, Path)), request_body = SegmentIn,
    responses((status = 201, body = Segment)))]
async fn create_segment(
    t: TenantAccess,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SegmentIn>,
) -> ApiResult<(StatusCode, Json<Segment>)> {
    let name = required_text(&body.name, "name", 255)?;
    let row = state.store.create_segment(&t.tenant_id, &new_id(), &name).await?;
    Ok((StatusCode::CREATED, Json(Segment::from_row(row, None))))
}

/// List segments with their sizes.
#[utoipa::path(get, path = "/customers/{id}/segments", tag = "segments", params(("id" = String, Path)),
    responses((status = 200, body = [Segment])))]
async fn list_segments(t: TenantAccess, State(state): State<AppState>) -> ApiResult<Json<Vec<Segment>>> {
    let rows = state.store.segments(&t.tenant_id).await?;
    Ok(Json(rows.into_iter().map(|s| Segment::from_row(s, None)).collect()))
}

/// Get a segment with its contacts (the first 1000).
#[utoipa::path(get, path = "/customers/{id}/segments/{sid}", tag = "segments", params(("id" = String, Path), ("sid" = String, Path)),
    responses((status = 200, body = Segment), (status = 404, body = crate::error::ErrorBody)))]
async fn get_segment(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<Segment>> {
    let seg = own_segment(&state, &t.tenant_id, &ids.1).await?;
    let contacts = state.store.segment_contacts(&seg.id, INLINE_CONTACTS).await?;
    Ok(Json(Segment::from_row(seg, Some(contacts.into_iter().map(Contact::from).collect()))))
}

/// Delete a segment (its contacts stay).
#[utoipa::path(delete, path = "/customers/{id}/segments/{sid}", tag = "segments", params(("id" = String, Path), ("sid" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_segment(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_id(&ids.1, "segment")?;
    if !state.store.delete_segment(&t.tenant_id, &id).await? {
        return Err(ApiError::NotFound("segment"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Add contacts to a segment.
#[utoipa::path(post, path = "/customers/{id}/segments/{sid}/contacts", tag = "segments",
    params(("id" = String, Path), ("sid" = String, Path)), request_body = MembersIn,
    responses((status = 200, body = MembersChanged), (status = 404, body = crate::error::ErrorBody)))]
async fn add_members(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    ApiJson(body): ApiJson<MembersIn>,
) -> ApiResult<Json<MembersChanged>> {
    let seg = own_segment(&state, &t.tenant_id, &ids.1).await?;
    let ids = member_ids(body)?;
    let added = state.store.add_segment_members(&t.tenant_id, &seg.id, &ids).await?;
    let count = state.store.segment(&t.tenant_id, &seg.id).await?.map_or(0, |s| s.contact_count);
    Ok(Json(MembersChanged { segment_id: seg.id, added_count: Some(added), removed_count: None, contact_count: count }))
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
    let seg = own_segment(&state, &t.tenant_id, &ids.1).await?;
    let ids = member_ids(body)?;
    let removed = state.store.remove_segment_members(&seg.id, &ids).await?;
    let count = state.store.segment(&t.tenant_id, &seg.id).await?.map_or(0, |s| s.contact_count);
    Ok(Json(MembersChanged {
        segment_id: seg.id,
        added_count: None,
        removed_count: Some(removed),
        contact_count: count,
    }))
}
