//! `GET /customers/{id}/events`: every delivery event of a customer's mail,
//! newest first, a page at a time.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::TenantAccess;
use crate::error::{ApiError, ApiResult};
use crate::service::events::{self, EventQuery};
use crate::state::AppState;

pub use crate::service::events::EventPage;

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
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

/// The customer's delivery events (every Resend `email.*` type), newest first
/// by the event's own time. Filters combine; `cursor` pages to older events.
/// Opens are directional: Apple Mail Privacy Protection and some corporate
/// scanners fetch images without a person opening the email.
#[utoipa::path(get, path = "/customers/{id}/events", tag = "events", params(("id" = String, Path), EventParams),
    responses((status = 200, body = EventPage), (status = 422, body = crate::error::ErrorBody)))]
async fn list_events(
    t: TenantAccess,
    State(state): State<AppState>,
    params: Result<Query<EventParams>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<EventPage>)> {
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
    let next_cursor = page.next_cursor.clone();
    let mut headers = HeaderMap::new();
    if let Some(c) = &next_cursor {
        let mut next = format!("/customers/{}/events?limit={limit}&cursor={c}", t.tenant_id);
        for (k, v) in [
            ("type", filter.event_type.as_deref()),
            ("campaign_id", filter.campaign_id.as_deref()),
            ("contact_id", filter.contact_id.as_deref()),
            ("since", query.since.as_deref()),
            ("until", query.until.as_deref()),
        ] {
            if let Some(v) = v {
                next.push_str(&format!(
                    "&{k}={}",
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                ));
            }
        }
        if let Ok(v) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
            headers.insert(header::LINK, v);
        }
    }
    Ok((headers, Json(page)))
}
