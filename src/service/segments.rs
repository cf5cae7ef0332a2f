//! Segments: named groups of a tenant's contacts. A static segment holds the
//! contacts added to it; a dynamic one holds a filter (see `domain::filter`
//! for the grammar), evaluated when a campaign is enqueued.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::contacts::Contact;
use super::{parse_id, required_text, Error, Result};
use crate::domain::{new_id, rfc3339, SegmentFilter, TenantId};
use crate::state::AppState;
use crate::store::SegmentRow;

/// Most contacts shown inline by a segment's detail.
const INLINE_CONTACTS: i64 = 1000;

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
    pub fn from_row(s: SegmentRow, contacts: Option<Vec<Contact>>) -> Self {
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

    pub fn id(&self) -> &str {
        &self.id
    }
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

/// Parses a request's filter, naming the path of any error (`filter.all[2].op`).
pub fn parse_filter(v: &Value) -> Result<SegmentFilter> {
    SegmentFilter::parse(v, "filter").map_err(|e| Error::Invalid { code: "invalid_filter", message: e.to_string() })
}

/// A dynamic segment's stored filter, parsed (it was valid when stored).
pub fn stored_filter(seg: &SegmentRow) -> Result<Option<SegmentFilter>> {
    let Some(raw) = seg.filter.as_deref() else { return Ok(None) };
    let value: Value = serde_json::from_str(raw).map_err(|e| Error::Internal(e.into()))?;
    parse_filter(&value).map(Some)
}

fn refuse_members_of_dynamic(seg: &SegmentRow) -> Result<()> {
    if seg.filter.is_some() {
        return Err(Error::conflict(
            "dynamic_segment",
            "this segment is dynamic: its members are the contacts matching its filter; change the filter instead",
        ));
    }
    Ok(())
}

async fn own_segment(state: &AppState, tenant_id: &TenantId, raw: &str) -> Result<SegmentRow> {
    let id = parse_id(raw, "segment")?;
    state.store.segment(tenant_id, &id).await?.ok_or(Error::NotFound("segment"))
}

/// Contact ids for a members change: at most 10,000, each at least shaped like an id.
pub fn member_ids(contact_ids: &[String]) -> Result<Vec<String>> {
    if contact_ids.len() > 10_000 {
        return Err(Error::validation("at most 10000 contact_ids per request"));
    }
    // Unknown ids are skipped (they may name a contact deleted meanwhile); a
    // string that cannot be an id at all is the caller's mistake.
    contact_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            crate::domain::parse_id(id)
                .ok_or_else(|| Error::validation(format!("contact_ids[{i}] is not a contact id")))
        })
        .collect()
}

/// Creates a segment, dynamic when a filter is given.
pub async fn create(state: &AppState, tenant_id: &TenantId, name: &str, filter: Option<&Value>) -> Result<Segment> {
    let name = required_text(name, "name", 255)?;
    let filter = filter.map(parse_filter).transpose()?;
    let filter = filter.map(|f| f.source().to_string());
    let row = state.store.create_segment_with_filter(tenant_id, &new_id(), &name, filter.as_deref()).await?;
    Ok(Segment::from_row(row, None))
}

/// The tenant's segments with their sizes.
pub async fn list(state: &AppState, tenant_id: &TenantId) -> Result<Vec<Segment>> {
    let rows = state.store.segments(tenant_id).await?;
    Ok(rows.into_iter().map(|s| Segment::from_row(s, None)).collect())
}

/// A segment with its contacts (the first 1000).
pub async fn get(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<Segment> {
    let seg = own_segment(state, tenant_id, raw_id).await?;
    if let Some(filter) = stored_filter(&seg)? {
        let (count, contacts) = state.store.filter_members(tenant_id, &filter, INLINE_CONTACTS).await?;
        let mut out = Segment::from_row(seg, Some(contacts.into_iter().map(Contact::from).collect()));
        out.contact_count = Some(count);
        return Ok(out);
    }
    let contacts = state.store.segment_contacts(&seg.id, INLINE_CONTACTS).await?;
    Ok(Segment::from_row(seg, Some(contacts.into_iter().map(Contact::from).collect())))
}

/// Renames a segment, or replaces a dynamic segment's filter (a static one takes none: 409).
pub async fn update(
    state: &AppState,
    tenant_id: &TenantId,
    raw_id: &str,
    name: Option<&str>,
    filter: Option<&Value>,
) -> Result<Segment> {
    let seg = own_segment(state, tenant_id, raw_id).await?;
    let name = name.map(|n| required_text(n, "name", 255)).transpose()?;
    let filter = filter.map(parse_filter).transpose()?.map(|f| f.source().to_string());
    if filter.is_some() && seg.filter.is_none() {
        return Err(Error::conflict(
            "static_segment",
            "this segment is static (it has members): create a dynamic segment for a filter",
        ));
    }
    if !state.store.update_segment(tenant_id, &seg.id, name.as_deref(), filter.as_deref()).await? {
        return Err(Error::NotFound("segment"));
    }
    let seg = own_segment(state, tenant_id, &seg.id).await?;
    Ok(Segment::from_row(seg, None))
}

/// Deletes a segment (its contacts stay).
pub async fn delete(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<()> {
    let id = parse_id(raw_id, "segment")?;
    if !state.store.delete_segment(tenant_id, &id).await? {
        return Err(Error::NotFound("segment"));
    }
    Ok(())
}

/// Adds contacts to a static segment of the tenant's (`add`), or removes them.
pub async fn change_members(
    state: &AppState,
    tenant_id: &TenantId,
    segment_id: &str,
    contact_ids: &[String],
    add: bool,
) -> Result<MembersChanged> {
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
