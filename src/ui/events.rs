//! A tenant's delivery events, newest first, filtered by type and campaign,
//! a page at a time: the listing of `GET /customers/{id}/events`
//! (`service::events::list`), with its cursor in the "older events" link.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::tenant_scope::Scoped;
use super::{page, query_string, Frame, UiResult};
use crate::service::events::{self, EventQuery};
use crate::state::AppState;

/// Events per page.
const PAGE: &str = "50";
/// Events counted for the total at most ("more than 10,000" past it).
const EVENTS_COUNTED: i64 = 10_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/ui/t/{tid}/events", get(list))
}

#[derive(Deserialize, Default)]
pub struct EventsQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
    campaign_id: Option<String>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<EventsQuery>>,
) -> UiResult<Response> {
    let present = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let params = EventQuery {
        event_type: present(&q.event_type),
        campaign_id: present(&q.campaign_id),
        cursor: present(&q.cursor),
        limit: Some(PAGE.to_owned()),
        ..EventQuery::default()
    };
    let (listed, filter, _) = events::list(&state, &id, &params).await?;
    let total = state
        .store
        .tenant_event_total(&id, filter.event_type.as_deref(), filter.campaign_id.as_deref(), EVENTS_COUNTED)
        .await?;
    let listed = serde_json::to_value(listed).unwrap_or_default();
    let filters = [("type", params.event_type.as_deref()), ("campaign_id", params.campaign_id.as_deref())];
    let next_query = listed["next_cursor"].as_str().map(|c| {
        let mut pairs = filters.to_vec();
        pairs.push(("cursor", Some(c)));
        query_string(&pairs)
    });
    let email_ids: Vec<&str> = listed["data"]
        .as_array()
        .map(|events| events.iter().filter_map(|e| e["email_id"].as_str()).collect())
        .unwrap_or_default();
    let recipients = state.store.recipients_of(&id, &email_ids).await?;
    let campaigns: Vec<(String, String)> =
        state.store.campaigns(&id).await?.into_iter().map(|c| (c.id, c.subject)).collect();
    let campaign_names: std::collections::BTreeMap<&str, &str> =
        campaigns.iter().map(|(id, subject)| (id.as_str(), subject.as_str())).collect();
    let types: Vec<&str> =
        crate::delivery_events::KNOWN_TYPES.iter().copied().filter(|t| t.starts_with("email.")).collect();
    let frame = Frame::new(&user, Some(&row), "events");
    Ok(page(
        StatusCode::OK,
        "events.html",
        &frame,
        minijinja::context! {
            events => listed["data"].clone(), recipients, next_query, total, counted => EVENTS_COUNTED, first_query => query_string(&filters),
            paged => params.cursor.is_some(), types, campaigns, campaign_names,
            filter_type => params.event_type, filter_campaign => params.campaign_id,
        },
    ))
}
