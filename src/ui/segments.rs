//! A tenant's segments: the list with a builder for a new one, each segment's
//! page (its audience now, its conditions in words, its contacts a page at a
//! time, the same builder to edit it), deletion after a confirmation, and the
//! builder's live count. Every change goes through `service::segments`, the
//! use cases the API's segment routes call; a refused filter is shown on the
//! form with what was typed.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::form::Fields;
use super::operator::Done;
use super::segment_form::{describe, SegmentFields, KINDS, STATUSES};
use super::tenant_scope::{header_token, Posted, Scoped};
use super::{form_error, page, query_string, scope, see_other, Frame, UiError, UiResult, UiUser};
use crate::domain::{parse_id, rfc3339, TenantId};
use crate::service::{contacts, segments, sending};
use crate::state::AppState;
use crate::store::{SegmentRow, TenantRow};

/// Contacts per page of a segment.
const PAGE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}/segments", get(list).post(create))
        .route("/ui/t/{tid}/segments/count", post(count))
        .route("/ui/t/{tid}/segments/{sid}", get(segment).post(save))
        .route("/ui/t/{tid}/segments/{sid}/delete", get(confirm_delete).post(delete))
}

/// A refusal to show on the form: its status and message.
type Rejected = (StatusCode, String);

#[derive(Serialize)]
struct Listed {
    segment: segments::Segment,
    audience: i64,
}

/// Who a campaign to the segment would reach now (subscribed, not suppressed).
async fn audience(state: &AppState, id: &TenantId, sid: &str) -> UiResult<i64> {
    let targeting = sending::resolve_targeting(state, id, None, Some(sid), None, None).await?;
    Ok(sending::audience_count(state, id, &targeting, None).await?)
}

/// The builder's choices, as the templates take them.
fn choices() -> (Vec<(&'static str, &'static str)>, [&'static str; 4]) {
    (KINDS.to_vec(), STATUSES)
}

async fn list_page(
    state: &AppState,
    user: &UiUser,
    (id, row): (&TenantId, &TenantRow),
    form: SegmentFields,
    rejected: Option<Rejected>,
    done: Option<&str>,
) -> UiResult<Response> {
    let mut list = Vec::new();
    for s in state.store.segments(id).await? {
        let audience = audience(state, id, &s.id).await?;
        list.push(Listed { segment: segments::Segment::from_row(s, None), audience });
    }
    let (status, error) = rejected.map_or((StatusCode::OK, None), |(s, m)| (s, Some(m)));
    let (kinds, statuses) = choices();
    let frame = Frame::new(user, Some(row), "segments").notice(done);
    Ok(page(status, "segments.html", &frame, minijinja::context! { segments => list, form, error, kinds, statuses }))
}

async fn list(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>,
) -> UiResult<Response> {
    list_page(&state, &user, (&id, &row), SegmentFields::default(), None, q.done.as_deref()).await
}

/// The filter the form describes, ready for the service: `Ok(None)` for no
/// condition; the row numbers let the service's errors name the form's rows.
fn built(fields: &SegmentFields) -> Result<Option<(Value, Vec<usize>)>, Rejected> {
    fields.filter().map_err(|m| (StatusCode::UNPROCESSABLE_ENTITY, m))
}

/// A use case's refusal in the form's words (a missing segment is the 404 page).
fn refused(e: crate::service::Error, numbers: &[usize]) -> UiResult<Rejected> {
    form_error(e).map(|(status, m)| (status, SegmentFields::humanize(&m, numbers)))
}

async fn create(
    State(state): State<AppState>,
    Posted { user, id, tenant: row, form: f, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let more = f.get("action") == "more";
    let fields = SegmentFields::posted(&f, more);
    if more {
        return list_page(&state, &user, (&id, &row), fields, None, None).await;
    }
    let outcome = match built(&fields) {
        Err(rejected) => Err(rejected),
        Ok(filter) => {
            let (value, numbers) = filter.map_or((None, Vec::new()), |(v, n)| (Some(v), n));
            match segments::create(&state, &id, &fields.name, value.as_ref()).await {
                Ok(created) => Ok(created.id().to_owned()),
                Err(e) => Err(refused(e, &numbers)?),
            }
        }
    };
    match outcome {
        Ok(sid) => Ok(see_other(&format!("/ui/t/{id}/segments/{sid}"), "segment_created")),
        Err(rejected) => list_page(&state, &user, (&id, &row), fields, Some(rejected), None).await,
    }
}

#[derive(Deserialize, Default)]
pub struct SegmentQuery {
    /// The contact id the page of contacts starts after.
    after: Option<String>,
    done: Option<String>,
}

async fn own_segment(state: &AppState, id: &TenantId, raw: &str) -> UiResult<SegmentRow> {
    let sid = parse_id(raw).ok_or(UiError::NotFound)?;
    state.store.segment(id, &sid).await?.ok_or(UiError::NotFound)
}

/// The segment's filter as stored (JSON), for the form and the words.
fn filter_json(seg: &SegmentRow) -> Option<Value> {
    seg.filter.as_deref().and_then(|f| serde_json::from_str(f).ok())
}

/// What a segment's page shows beside the segment itself.
#[derive(Default)]
struct Shown<'a> {
    /// The form as posted (after a refusal or "Add a condition"); `None`: as stored.
    form: Option<SegmentFields>,
    rejected: Option<Rejected>,
    /// The contact id the page of contacts starts after.
    after: Option<&'a str>,
    done: Option<&'a str>,
}

async fn show(
    state: &AppState,
    user: &UiUser,
    (id, row): (&TenantId, &TenantRow),
    seg: SegmentRow,
    Shown { form, rejected, after, done }: Shown<'_>,
) -> UiResult<Response> {
    let after = after.and_then(parse_id);
    let audience = audience(state, id, &seg.id).await?;
    let filter = filter_json(&seg);
    let cursor = after.as_deref().unwrap_or("");
    let (total, mut rows) = match segments::stored_filter(&seg)? {
        Some(parsed) => state.store.filter_members_after(id, &parsed, cursor, PAGE + 1).await?,
        None => (seg.contact_count, state.store.segment_members_after(id, &seg.id, cursor, PAGE + 1).await?),
    };
    let next_query = if rows.len() as i64 > PAGE {
        rows.truncate(PAGE as usize);
        rows.last().map(|c| query_string(&[("after", Some(c.id.as_str()))]))
    } else {
        None
    };
    let members: Vec<contacts::Contact> = rows.into_iter().map(contacts::Contact::from).collect();
    // The conditions in words: the top level as a list, anything nested inline.
    let (combinator, conditions) = match &filter {
        None => (String::new(), Vec::new()),
        Some(f) => match f.as_object().and_then(|m| m.iter().next()) {
            Some((k, Value::Array(items))) if k == "all" || k == "any" => {
                (k.clone(), items.iter().map(describe).collect())
            }
            _ => ("all".to_owned(), vec![describe(f)]),
        },
    };
    let stored_form = SegmentFields::of(&seg.name, filter.as_ref());
    // A filter written through the API that the rows cannot hold is kept unless replaced.
    let complex = filter.is_some() && stored_form.is_none();
    let form = form.or(stored_form).unwrap_or_else(|| SegmentFields { name: seg.name.clone(), ..Default::default() });
    let (status, error) = rejected.map_or((StatusCode::OK, None), |(s, m)| (s, Some(m)));
    let (kinds, statuses) = choices();
    let frame = Frame::new(user, Some(row), "segments").notice(done);
    let segment = json!({
        "id": seg.id, "name": seg.name, "dynamic": filter.is_some(), "created_at": rfc3339(seg.created_at),
    });
    Ok(page(
        status,
        "segment.html",
        &frame,
        minijinja::context! {
            segment, audience, total, members, next_query, paged => after.is_some(),
            combinator, conditions, filter_json => filter.map(|f| f.to_string()),
            form, complex, error, kinds, statuses,
        },
    ))
}

async fn segment(
    State(state): State<AppState>,
    Path((_, sid)): Path<(String, String)>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<SegmentQuery>>,
) -> UiResult<Response> {
    let seg = own_segment(&state, &id, &sid).await?;
    let shown = Shown { after: q.after.as_deref(), done: q.done.as_deref(), ..Shown::default() };
    show(&state, &user, (&id, &row), seg, shown).await
}

/// Renames the segment and, for a dynamic one, replaces its conditions.
async fn save(
    State(state): State<AppState>,
    Path((_, sid)): Path<(String, String)>,
    Posted { user, id, tenant: row, form: f, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let seg = own_segment(&state, &id, &sid).await?;
    let more = f.get("action") == "more";
    let fields = SegmentFields::posted(&f, more);
    if more {
        return show(&state, &user, (&id, &row), seg, Shown { form: Some(fields), ..Shown::default() }).await;
    }
    let outcome = match (seg.filter.is_some(), built(&fields)) {
        (_, Err(rejected)) => Err(rejected),
        // A static segment takes a name only: its members are added by hand.
        (false, Ok(_)) => match segments::update(&state, &id, &seg.id, Some(&fields.name), None).await {
            Ok(_) => Ok(()),
            Err(e) => Err(refused(e, &[])?),
        },
        (true, Ok(None)) if SegmentFields::of(&seg.name, filter_json(&seg).as_ref()).is_some() => {
            Err((StatusCode::UNPROCESSABLE_ENTITY, "A dynamic segment needs at least one condition.".to_owned()))
        }
        (true, Ok(filter)) => {
            let (value, numbers) = filter.map_or((None, Vec::new()), |(v, n)| (Some(v), n));
            match segments::update(&state, &id, &seg.id, Some(&fields.name), value.as_ref()).await {
                Ok(_) => Ok(()),
                Err(e) => Err(refused(e, &numbers)?),
            }
        }
    };
    match outcome {
        Ok(()) => Ok(see_other(&format!("/ui/t/{id}/segments/{}", seg.id), "segment_saved")),
        Err(rejected) => {
            let shown = Shown { form: Some(fields), rejected: Some(rejected), ..Shown::default() };
            show(&state, &user, (&id, &row), seg, shown).await
        }
    }
}

async fn confirm_delete(
    State(state): State<AppState>,
    Path((_, sid)): Path<(String, String)>,
    Scoped { user, id, tenant: row, .. }: Scoped,
) -> UiResult<Response> {
    let seg = own_segment(&state, &id, &sid).await?;
    let frame = Frame::new(&user, Some(&row), "segments");
    Ok(page(
        StatusCode::OK,
        "segment_delete.html",
        &frame,
        minijinja::context! {
            id => seg.id, name => seg.name, dynamic => seg.filter.is_some(), members => seg.contact_count,
        },
    ))
}

async fn delete(
    State(state): State<AppState>,
    Path((_, sid)): Path<(String, String)>,
    Posted { id, .. }: Posted<Fields>,
) -> UiResult<Response> {
    segments::delete(&state, &id, &sid).await?;
    Ok(see_other(&format!("/ui/t/{id}/segments"), "segment_deleted"))
}

/// The live count of the builder: who a campaign to these conditions would
/// reach now (none without a condition: such a segment is static and empty).
/// A filter the service refuses is a 422 with the form's words, for the page to show.
async fn count(
    State(state): State<AppState>,
    user: UiUser,
    Path(tid): Path<String>,
    headers: HeaderMap,
    f: Fields,
) -> Response {
    let token = header_token(&headers).unwrap_or(f.get("csrf")).to_owned();
    if let Err(e) = user.check_csrf(&token) {
        return e.into_response();
    }
    let id = match scope(&state, &user, &tid).await {
        Ok((id, _)) => id,
        Err(e) => return e.into_response(),
    };
    let unusable =
        |message: String| (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "error": message }))).into_response();
    let (filter, numbers) = match built(&SegmentFields::posted(&f, false)) {
        Ok(Some(built)) => built,
        Ok(None) => return Json(json!({ "count": 0 })).into_response(),
        Err((_, message)) => return unusable(message),
    };
    let counted = async {
        let targeting = sending::resolve_targeting(&state, &id, None, None, None, Some(&filter)).await?;
        sending::audience_count(&state, &id, &targeting, None).await
    };
    match counted.await {
        Ok(n) => Json(json!({ "count": n })).into_response(),
        Err(e) => match refused(e, &numbers) {
            Ok((_, message)) => unusable(message),
            Err(e) => e.into_response(),
        },
    }
}
