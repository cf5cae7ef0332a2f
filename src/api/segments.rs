//! Segments: named groups of a customer's contacts. A static segment holds
//! the contacts added to it; a dynamic one holds a filter (see
//! `domain::filter` for the grammar), evaluated when a campaign is enqueued.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::contacts::Contact;
use super::{path_id, required_text, ApiJson};
use crate::auth::TenantAccess;
use crate::domain::TenantId;
use crate::domain::{new_id, parse_id, rfc3339, SegmentFilter};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::SegmentRow;

/// Most contacts shown inline by `GET /segments/{sid}`.
const INLINE_CONTACTS: i64 = 1000;

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

#[derive(Serialize, ToSchema)]
pub struct Segment {
    id: String,
    customer_id: String,
    name: String,
    /// Members of a static segment; contacts matching a dynamic segment's
    /// filter now (any status) on `GET /segments/{sid}`, `null` in the list.
    contact_count: Option<i64>,
    created_at: String,
    /// True when membership comes from `filter`.
    dynamic: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    filter: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contacts: Option<Vec<Contact>>,
}

impl Segment {
    pub(crate) fn from_row(s: SegmentRow, contacts: Option<Vec<Contact>>) -> Self {
        let filter = s.filter.as_deref().and_then(|f| serde_json::from_str::<Value>(f).ok());
        Self {
            id: s.id,
            customer_id: s.tenant_id,
            name: s.name,
            contact_count: if filter.is_some() { None } else { Some(s.contact_count) },
            created_at: rfc3339(s.created_at),
            dynamic: filter.is_some(),
            filter,
            contacts,
        }
    }
}

/// Parses a request's filter, naming the path of any error (`filter.all[2].op`).
pub fn parse_filter(v: &Value) -> ApiResult<SegmentFilter> {
    SegmentFilter::parse(v, "filter").map_err(|e| ApiError::Invalid { code: "invalid_filter", message: e.to_string() })
}

/// A dynamic segment's stored filter, parsed (it was valid when stored).
pub fn stored_filter(seg: &SegmentRow) -> ApiResult<Option<SegmentFilter>> {
    let Some(raw) = seg.filter.as_deref() else { return Ok(None) };
    let value: Value = serde_json::from_str(raw).map_err(|e| ApiError::Internal(e.into()))?;
    parse_filter(&value).map(Some)
}

fn refuse_members_of_dynamic(seg: &SegmentRow) -> ApiResult<()> {
    if seg.filter.is_some() {
        return Err(ApiError::conflict(
            "dynamic_segment",
            "this segment is dynamic: its members are the contacts matching its filter; change the filter instead",
        ));
    }
    Ok(())
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
    /// contacts already in the segment are skipped; a string that is not an id
    /// at all is a 422).
    #[serde(skip_serializing_if = "Option::is_none")]
    added_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    removed_count: Option<u64>,
    contact_count: i64,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_segment, list_segments))
        .routes(routes!(get_segment, delete_segment, patch_segment))
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
    // Unknown ids are skipped (they may name a contact deleted meanwhile); a
    // string that cannot be an id at all is the caller's mistake.
    body.contact_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            parse_id(id).ok_or_else(|| ApiError::validation(format!("contact_ids[{i}] is not a contact id")))
        })
        .collect()
}

/// Create a segment.
#[utoipa::path(post, path = "/customers/{id}/segments", tag = "segments", params(("id" = String, Path)), request_body = SegmentIn,
    responses((status = 201, body = Segment), (status = 422, body = crate::error::ErrorBody, description = "invalid filter, with its path")))]
async fn create_segment(
    t: TenantAccess,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SegmentIn>,
) -> ApiResult<(StatusCode, Json<Segment>)> {
    Ok((StatusCode::CREATED, Json(create(&state, &t.tenant_id, &body.name, body.filter.as_ref()).await?)))
}

/// Creates a segment, dynamic when a filter is given (the API and the dashboard).
pub(crate) async fn create(
    state: &AppState,
    tenant_id: &TenantId,
    name: &str,
    filter: Option<&Value>,
) -> ApiResult<Segment> {
    let name = required_text(name, "name", 255)?;
    let filter = filter.map(parse_filter).transpose()?;
    let filter = filter.map(|f| f.source().to_string());
    let row = state.store.create_segment_with_filter(tenant_id, &new_id(), &name, filter.as_deref()).await?;
    Ok(Segment::from_row(row, None))
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
    if let Some(filter) = stored_filter(&seg)? {
        let (count, contacts) = state.store.filter_members(&t.tenant_id, &filter, INLINE_CONTACTS).await?;
        let mut out = Segment::from_row(seg, Some(contacts.into_iter().map(Contact::from).collect()));
        out.contact_count = Some(count);
        return Ok(Json(out));
    }
    let contacts = state.store.segment_contacts(&seg.id, INLINE_CONTACTS).await?;
    Ok(Json(Segment::from_row(seg, Some(contacts.into_iter().map(Contact::from).collect()))))
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
    let seg = own_segment(&state, &t.tenant_id, &ids.1).await?;
    let name = body.name.as_deref().map(|n| required_text(n, "name", 255)).transpose()?;
    let filter = body.filter.as_ref().map(parse_filter).transpose()?.map(|f| f.source().to_string());
    if filter.is_some() && seg.filter.is_none() {
        return Err(ApiError::conflict(
            "static_segment",
            "this segment is static (it has members): create a dynamic segment for a filter",
        ));
    }
    if !state.store.update_segment(&t.tenant_id, &seg.id, name.as_deref(), filter.as_deref()).await? {
        return Err(ApiError::NotFound("segment"));
    }
    let seg = own_segment(&state, &t.tenant_id, &seg.id).await?;
    Ok(Json(Segment::from_row(seg, None)))
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
    responses((status = 200, body = MembersChanged), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody, description = "the segment is dynamic")))]
async fn add_members(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    ApiJson(body): ApiJson<MembersIn>,
) -> ApiResult<Json<MembersChanged>> {
    let contacts = member_ids(body)?;
    change_members(&state, &t.tenant_id, &ids.1, &contacts, true).await.map(Json)
}

/// Adds contacts to a static segment of the tenant's (`add`), or removes them:
/// what the members routes do, and the dashboard's contact page too.
pub(crate) async fn change_members(
    state: &AppState,
    tenant_id: &TenantId,
    segment_id: &str,
    contact_ids: &[String],
    add: bool,
) -> ApiResult<MembersChanged> {
    let seg = own_segment(state, tenant_id, segment_id).await?;
    refuse_members_of_dynamic(&seg)?;
    let (added_count, removed_count) = if add {
        (Some(state.store.add_segment_members(tenant_id, &seg.id, contact_ids).await?), None)
    } else {
        (None, Some(state.store.remove_segment_members(&seg.id, contact_ids).await?))
    };
    let contact_count = state.store.segment(tenant_id, &seg.id).await?.map_or(0, |s| s.contact_count);
    Ok(MembersChanged { segment_id: seg.id, added_count, removed_count, contact_count })
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
    let contacts = member_ids(body)?;
    change_members(&state, &t.tenant_id, &ids.1, &contacts, false).await.map(Json)
}
