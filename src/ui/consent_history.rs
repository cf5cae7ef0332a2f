//! A contact's consent history in the dashboard (issue 23): the newest
//! records on the contact's page, older ones a page at a time here, read
//! through the same use case as the API's `GET .../contacts/{cid}/consent`
//! (`service::consent::history`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

use super::tenant_scope::Scoped;
use super::{page, Frame, UiError, UiResult};
use crate::domain::{parse_id, TenantId};
use crate::service::{consent, contacts};
use crate::state::AppState;

/// Records on the contact's page, and on each older page.
pub const CONSENT_PAGE: i64 = 10;

pub fn router() -> Router<AppState> {
    Router::new().route("/ui/t/{tid}/contacts/{cid}/consent", get(older))
}

/// A page of the contact's consent history, newest first, after the record
/// `after`, and the id to go on from when there are older ones.
pub async fn consent_page(
    state: &AppState,
    id: &TenantId,
    cid: &str,
    after: Option<&str>,
) -> UiResult<(Vec<Value>, Option<String>)> {
    let mut records = consent::history(state, id, cid, after, CONSENT_PAGE + 1).await?;
    let more = usize::try_from(CONSENT_PAGE).is_ok_and(|page| records.len() > page);
    records.truncate(usize::try_from(CONSENT_PAGE).unwrap_or(10));
    let next = more.then(|| records.last().map(|r| r.id.clone())).flatten();
    let shown = records.iter().map(|r| serde_json::to_value(r).unwrap_or_default()).collect();
    Ok((shown, next))
}

#[derive(Deserialize, Default)]
pub struct OlderQuery {
    after: Option<String>,
}

async fn older(
    State(state): State<AppState>,
    Path((_, cid)): Path<(String, String)>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<OlderQuery>>,
) -> UiResult<Response> {
    let cid = parse_id(&cid).ok_or(UiError::NotFound)?;
    let contact = contacts::get(&state, &id, &cid).await?;
    // A cursor that is not one of the contact's records is the use case's 422.
    let (records, next) = consent_page(&state, &id, &cid, q.after.as_deref()).await?;
    let frame = Frame::new(&user, Some(&row), "contacts");
    Ok(page(
        StatusCode::OK,
        "contact_consent.html",
        &frame,
        minijinja::context! { contact_id => cid, email => contact.email, records, next, paged => q.after.is_some() },
    ))
}
