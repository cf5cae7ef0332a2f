//! A tenant's delivery events, newest first, a page at a time (the API's
//! `GET /customers/{id}/events` and the dashboard's events page).

use base64::Engine;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Error, Result};
use crate::domain::{rfc3339, TenantId};
use crate::state::AppState;
use crate::store::{EventFilter, ListedEvent};

/// Which events, as asked for (each may be absent or empty).
#[derive(Default)]
pub struct EventQuery {
    /// e.g. `email.clicked`.
    pub event_type: Option<String>,
    pub campaign_id: Option<String>,
    pub contact_id: Option<String>,
    /// RFC 3339.
    pub since: Option<String>,
    /// RFC 3339.
    pub until: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Event {
    /// The event's svix id.
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    /// mailroom's message id (`email_id` of the send APIs).
    email_id: Option<String>,
    /// The provider's id for the email.
    provider_email_id: Option<String>,
    campaign_id: Option<String>,
    contact_id: Option<String>,
    /// When the event happened (the provider's time), else when it was received.
    created_at: String,
    received_at: String,
    /// Clicks: the link clicked.
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    /// Bounces: `Permanent`, `Transient` or `Undetermined`.
    #[serde(skip_serializing_if = "Option::is_none")]
    bounce_type: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub data: Vec<Event>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<ListedEvent> for Event {
    fn from(e: ListedEvent) -> Self {
        Event {
            id: e.svix_id,
            event_type: e.event_type,
            email_id: e.message_id,
            provider_email_id: e.provider_email_id,
            campaign_id: e.campaign_id,
            contact_id: e.contact_id,
            created_at: rfc3339(e.occurred_at),
            received_at: rfc3339(e.received_at),
            link: e.link,
            bounce_type: e.bounce_type,
        }
    }
}

/// Parses an RFC 3339 query time as epoch ms.
pub fn query_time(raw: Option<&str>, name: &str) -> Result<Option<i64>> {
    match raw {
        None | Some("") => Ok(None),
        Some(v) => crate::delivery_events::parse_time(v)
            .map(Some)
            .ok_or_else(|| Error::validation(format!("`{name}` must be an RFC 3339 time, e.g. 2026-11-20T10:00:00Z"))),
    }
}

fn encode_cursor(e: &ListedEvent) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{}", e.occurred_at, e.svix_id))
}

fn decode_cursor(raw: &str) -> Result<(i64, String)> {
    let bad = || Error::validation("`cursor` is not a cursor this API gave out");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (at, id) = text.split_once(':').ok_or_else(bad)?;
    let at = at.parse::<i64>().map_err(|_| bad())?;
    if id.is_empty() || id.contains('\0') {
        return Err(bad());
    }
    Ok((at, id.to_owned()))
}

fn optional_id(raw: Option<&str>, name: &str) -> Result<Option<String>> {
    match raw {
        None | Some("") => Ok(None),
        Some(v) => crate::domain::parse_id(v)
            .map(Some)
            .ok_or_else(|| Error::validation(format!("`{name}` must be an id (a UUID)"))),
    }
}

/// One page of the customer's events, newest first, with the filter it used
/// and the page size: the API's listing and the dashboard's.
pub async fn list(
    state: &AppState,
    tenant_id: &TenantId,
    params: &EventQuery,
) -> Result<(EventPage, EventFilter, i64)> {
    let limit = super::page_limit(params.limit.as_deref())?;
    let event_type = match params.event_type.as_deref() {
        None | Some("") => None,
        Some(v) if v.len() <= 64 && v.bytes().all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_') => {
            Some(v.to_owned())
        }
        Some(_) => return Err(Error::validation("`type` must be an event type such as `email.delivered`")),
    };
    let since = query_time(params.since.as_deref(), "since")?;
    let until = query_time(params.until.as_deref(), "until")?;
    let before = params.cursor.as_deref().filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
    let filter = EventFilter {
        event_type,
        campaign_id: optional_id(params.campaign_id.as_deref(), "campaign_id")?,
        contact_id: optional_id(params.contact_id.as_deref(), "contact_id")?,
        since,
        until,
        before,
        limit,
    };
    let mut rows = state.store.tenant_events(tenant_id, &filter).await?;
    let mut next_cursor = None;
    if rows.len() as i64 > limit {
        rows.truncate(usize::try_from(limit).unwrap_or(100));
        next_cursor = rows.last().map(encode_cursor);
    }
    Ok((EventPage { data: rows.into_iter().map(Event::from).collect(), next_cursor }, filter, limit))
}
