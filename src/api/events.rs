//! `GET /customers/{id}/events`: every delivery event of a customer's mail,
//! newest first, a page at a time (`Link` header).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::TenantAccess;
use crate::error::{ApiError, ApiResult};
use crate::service::events::{self, EventQuery};
use crate::state::AppState;

use super::paging::next_page;
pub use crate::service::events::Event;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// Only events of this type, e.g. `email.clicked`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only events of this campaign's messages.
    campaign_id: Option<String>,
    /// Only events of this contact's messages.
    contact_id: Option<String>,
    /// Only events at or after this time (RFC 3339).
    since: Option<String>,
    /// Only events before this time (RFC 3339).
    until: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<String>,
    /// Where the next page starts: set by the `Link` header of the previous page.
    cursor: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

/// The customer's delivery events (every Resend `email.*` type), newest first
/// by the event's own time, a page at a time: a JSON array, and the next
/// (older) page in `Link: <...>; rel="next"`. Filters combine. Opens are
/// directional: Apple Mail Privacy Protection and some corporate scanners
/// fetch images without a person opening the email.
#[utoipa::path(get, path = "/customers/{id}/events", tag = "events", params(("id" = String, Path), EventParams),
    responses((status = 200, body = [Event], headers(("link" = String,
        description = "`<...>; rel=\"next\"`: the next page, with the same filters; absent on the last page"))),
        (status = 422, body = crate::error::ErrorBody)))]
async fn list_events(
    t: TenantAccess,
    State(state): State<AppState>,
    params: Result<Query<EventParams>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Vec<Event>>)> {
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    let query = EventQuery {
        event_type: params.event_type,
        campaign_id: params.campaign_id,
        contact_id: params.contact_id,
        since: params.since,
        until: params.until,
        limit: params.limit,
        cursor: params.cursor,
    };
    let (page, filter, limit) = events::list(&state, &t.tenant_id, &query).await?;
    let headers = match &page.next_cursor {
        None => HeaderMap::new(),
        Some(cursor) => next_page(
            &format!("/customers/{}/events", t.tenant_id),
            &[
                ("limit", Some(&limit.to_string())),
                ("cursor", Some(cursor)),
                ("type", filter.event_type.as_deref()),
                ("campaign_id", filter.campaign_id.as_deref()),
                ("contact_id", filter.contact_id.as_deref()),
                ("since", query.since.as_deref()),
                ("until", query.until.as_deref()),
            ],
        ),
    };
    Ok((headers, Json(page.data)))
}
