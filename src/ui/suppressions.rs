//! A tenant's suppression list, read-only: who gets no more mail, and why.
//! (Adding and removing entries is done through the API for now.)

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::{page, scope, Frame, UiResult, UiUser};
use crate::domain::rfc3339;
use crate::state::AppState;

const PAGE: i64 = 100;
const REASONS: [&str; 4] = ["bounced", "complained", "unsubscribed", "manual"];

pub fn router() -> Router<AppState> {
    Router::new().route("/ui/t/{tid}/suppressions", get(list))
}

#[derive(Deserialize)]
pub struct ListQuery {
    reason: Option<String>,
    after: Option<String>,
}

#[derive(Serialize)]
struct Entry {
    email: String,
    reason: String,
    source: Option<String>,
    since: String,
}

async fn list(
    State(state): State<AppState>,
    user: UiUser,
    Path(tid): Path<String>,
    Query(q): Query<ListQuery>,
) -> UiResult<Response> {
    let (id, row) = scope(&state, &user, &tid).await?;
    let reason = q.reason.as_deref().filter(|r| REASONS.contains(r));
    let after = q.after.as_deref().unwrap_or("").to_lowercase();
    let mut rows = state.store.suppressions(&id, reason, &after, PAGE).await?;
    let next = if rows.len() as i64 > PAGE {
        rows.truncate(PAGE as usize);
        rows.last().map(|r| r.email_normalized.clone())
    } else {
        None
    };
    let entries: Vec<Entry> = rows
        .into_iter()
        .map(|r| Entry { email: r.email_normalized, reason: r.reason, source: r.source, since: rfc3339(r.created_at) })
        .collect();
    let frame = Frame::new(&user, Some(&row), "suppressions");
    Ok(page(
        StatusCode::OK,
        "suppressions.html",
        &frame,
        minijinja::context! { entries, next, reason, reasons => REASONS },
    ))
}
