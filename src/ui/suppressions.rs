//! A tenant's suppression list: who gets no more mail, and why; addresses
//! added by hand (one per line) and entries removed, through the same
//! use cases as the API (`service::suppressions`). Removing a `complained` entry
//! asks for an explicit confirmation first, as the API asks for `?force=true`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::form::Fields;
use super::tenant_scope::{Posted, Scoped};
use super::{format, page, see_other, Frame, UiError, UiResult, UiUser};
use crate::domain::{parse_id, rfc3339, TenantId};
use crate::error::ApiError;
use crate::service::suppressions;
use crate::state::AppState;
use crate::store::TenantRow;

const PAGE: i64 = 100;
const REASONS: [&str; 7] = ["bounced", "soft_bounced", "complained", "unsubscribed", "manual", "automation", "erased"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}/suppressions", get(list).post(add))
        .route("/ui/t/{tid}/suppressions/remove", post(remove))
}

#[derive(Deserialize)]
pub struct ListQuery {
    reason: Option<String>,
    after: Option<String>,
    done: Option<String>,
}

#[derive(Serialize)]
struct Entry {
    email: String,
    reason: String,
    source: Source,
    since: String,
}

/// Where a suppression came from, as the page shows it: a link to the
/// campaign or the message behind it, else a few words.
#[derive(Serialize)]
struct Source {
    href: Option<String>,
    label: String,
}

/// Names each entry's source: the events and unsubscribes that suppress an
/// address record the message or campaign they came from (ids of this
/// tenant's, looked up within it); hand-made entries say so.
async fn sources(state: &AppState, tenant: &TenantId, raw: &[Option<String>]) -> UiResult<Vec<Source>> {
    let ids: Vec<&str> = raw.iter().flatten().map(String::as_str).filter(|s| parse_id(s).is_some()).collect();
    let recipients = state.store.recipients_of(tenant, &ids).await?;
    let mut campaigns = std::collections::HashMap::new();
    for id in ids.iter().filter(|id| !recipients.contains_key(**id)) {
        if !campaigns.contains_key(*id) {
            if let Some(c) = state.store.campaign(tenant, id).await? {
                campaigns.insert(*id, format::subject_title(&c.subject));
            }
        }
    }
    let t = format!("/ui/t/{tenant}");
    Ok(raw
        .iter()
        .map(|source| match source.as_deref() {
            None => Source { href: None, label: "—".into() },
            Some(s) if recipients.contains_key(s) => {
                Source { href: Some(format!("{t}/messages/{s}")), label: format!("the message to {}", recipients[s]) }
            }
            Some(s) if campaigns.contains_key(s) => Source {
                href: Some(format!("{t}/campaigns/{s}")),
                label: format!("the campaign “{}”", campaigns[s]),
            },
            Some("api") => Source { href: None, label: "added by hand".into() },
            Some("automation") => Source { href: None, label: "an automation".into() },
            Some(other) => Source { href: None, label: other.into() },
        })
        .collect())
}

/// The add form as posted, shown again with its error.
struct Rejected {
    status: StatusCode,
    emails: String,
    error: String,
}

async fn list_page(
    state: &AppState,
    user: &UiUser,
    (id, row): (&TenantId, &TenantRow),
    q: &ListQuery,
    rejected: Option<Rejected>,
) -> UiResult<Response> {
    let reason = q.reason.as_deref().filter(|r| REASONS.contains(r));
    let after = q.after.as_deref().unwrap_or("").to_lowercase();
    if crate::domain::check_single_line(&after, "after").is_err() {
        return Err(UiError::NotFound);
    }
    let mut rows = state.store.suppressions(id, reason, &after, PAGE).await?;
    let total = state.store.suppression_total(id, reason).await?;
    let next = if rows.len() as i64 > PAGE {
        rows.truncate(PAGE as usize);
        rows.last().map(|r| r.email_normalized.clone())
    } else {
        None
    };
    let named = sources(state, id, &rows.iter().map(|r| r.source.clone()).collect::<Vec<_>>()).await?;
    let entries: Vec<Entry> = rows
        .into_iter()
        .zip(named)
        .map(|(r, source)| Entry { email: r.email_normalized, reason: r.reason, source, since: rfc3339(r.created_at) })
        .collect();
    let frame = Frame::new(user, Some(row), "suppressions").notice(q.done.as_deref());
    let (status, emails, error) = match rejected {
        Some(r) => (r.status, r.emails, Some(r.error)),
        None => (StatusCode::OK, String::new(), None),
    };
    Ok(page(
        status,
        "suppressions.html",
        &frame,
        minijinja::context! { entries, total, paged => !after.is_empty(), next, reason, reasons => REASONS, emails, error },
    ))
}

async fn list(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<ListQuery>>,
) -> UiResult<Response> {
    list_page(&state, &user, (&id, &row), &q, None).await
}

async fn add(
    State(state): State<AppState>,
    Posted { user, id, tenant: row, form: f, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let emails: Vec<String> =
        f.get("emails").lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    match suppressions::add(&state, &id, &emails).await.map_err(ApiError::from) {
        Ok(_) => Ok(see_other(&format!("/ui/t/{id}/suppressions"), "suppressions_added")),
        Err(e) if e.status().is_client_error() => {
            // The API's message names the position in its list: say which line instead.
            let error = match &e {
                ApiError::Invalid { code: "invalid_email", message } => line_message(message.as_str()),
                e => e.to_string(),
            };
            let rejected = Rejected { status: e.status(), emails: f.get("emails").to_owned(), error };
            let q = ListQuery { reason: None, after: None, done: None };
            list_page(&state, &user, (&id, &row), &q, Some(rejected)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `emails[3]: ...` as `Line 4: ...` (blank lines not counted).
fn line_message(message: &str) -> String {
    let parsed = message
        .strip_prefix("emails[")
        .and_then(|rest| rest.split_once("]: "))
        .and_then(|(i, why)| i.parse::<usize>().ok().map(|i| (i, why)));
    match parsed {
        Some((i, why)) => format!("Address {} of the list: {why}", i + 1),
        None => message.to_owned(),
    }
}

async fn remove(
    State(state): State<AppState>,
    Posted { user, id, tenant: row, form: f, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let email = f.get("email").trim();
    let force = f.get("force") == "true";
    match suppressions::remove(&state, &id, email, force).await.map_err(ApiError::from) {
        Ok(()) => Ok(see_other(&format!("/ui/t/{id}/suppressions"), "suppression_removed")),
        Err(ApiError::Conflict { code: "complaint_needs_force", .. }) => {
            // A complaint is removed only when asked twice, knowingly.
            let frame = Frame::new(&user, Some(&row), "suppressions");
            Ok(page(StatusCode::CONFLICT, "suppression_remove.html", &frame, minijinja::context! { email }))
        }
        Err(e) => Err(e.into()),
    }
}
