//! A tenant's webhook endpoints: add one (its signing secret is shown once,
//! on the page that answers the form), change its URL, description and event
//! types, switch it on or off, rotate its secret (shown once again), send a
//! test event, replay a delivery, delete it. Every change goes through the
//! same use cases as the API (`service::tenant_webhooks`), SSRF guard included.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::form::Fields;
use super::operator::Done;
use super::tenant_scope::{Posted, Scoped};
use super::{form_error, page, see_other, Frame, UiError, UiResult, UiUser};
use crate::domain::{now_ms, parse_id, rfc3339, TenantId, TENANT_EVENT_TYPES};
use crate::error::ApiError;
use crate::service::tenant_webhooks::{self as webhooks, EndpointChanges, NewEndpointInput};
use crate::state::AppState;
use crate::store::{EndpointRow, TenantRow};

/// Deliveries shown per page of an endpoint's log.
const RECENT: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}/webhooks", get(list).post(create))
        .route("/ui/t/{tid}/webhooks/{wid}", get(detail).post(save))
        .route("/ui/t/{tid}/webhooks/{wid}/switch", post(switch))
        .route("/ui/t/{tid}/webhooks/{wid}/rotate", post(rotate))
        .route("/ui/t/{tid}/webhooks/{wid}/test", post(test))
        .route("/ui/t/{tid}/webhooks/{wid}/delete", get(confirm_delete).post(delete))
        .route("/ui/t/{tid}/webhooks/{wid}/deliveries/{did}/replay", post(replay))
}

#[derive(Serialize)]
struct Delivery {
    id: String,
    event_type: String,
    status: String,
    attempts: i64,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    next_attempt_at: Option<String>,
    updated_at: String,
}

#[derive(Serialize)]
struct Endpoint {
    id: String,
    url: String,
    description: Option<String>,
    event_types: Vec<String>,
    enabled: bool,
    disabled_reason: Option<String>,
    consecutive_failures: i64,
    previous_secret_until: Option<String>,
}

impl From<EndpointRow> for Endpoint {
    fn from(e: EndpointRow) -> Self {
        let now = now_ms();
        Self {
            event_types: e.event_types(),
            id: e.id,
            url: e.url,
            description: e.description,
            enabled: e.enabled == 1,
            disabled_reason: e.disabled_reason,
            consecutive_failures: e.consecutive_failures,
            previous_secret_until: e.previous_secret_expires_at.filter(|t| *t > now).map(rfc3339),
        }
    }
}

/// What the endpoint form holds: as typed, when it is shown again with an error.
#[derive(Serialize, Default)]
struct FormValues {
    url: String,
    description: String,
    event_types: Vec<String>,
}

impl FormValues {
    fn of(e: &Endpoint) -> Self {
        Self {
            url: e.url.clone(),
            description: e.description.clone().unwrap_or_default(),
            event_types: e.event_types.clone(),
        }
    }

    fn posted(f: &Fields) -> Self {
        Self {
            url: f.get("url").to_owned(),
            description: f.get("description").to_owned(),
            event_types: f.all("event_types"),
        }
    }
}

async fn list_page(
    state: &AppState,
    user: &UiUser,
    id: &TenantId,
    row: &TenantRow,
    done: Option<&str>,
    rejected: Option<(StatusCode, FormValues, String)>,
) -> UiResult<Response> {
    let (status, form, error) = match rejected {
        Some((status, form, error)) => (status, form, Some(error)),
        None => (StatusCode::OK, FormValues::default(), None),
    };
    let endpoints: Vec<Endpoint> = state.store.endpoints(id).await?.into_iter().map(Endpoint::from).collect();
    let frame = Frame::new(user, Some(row), "webhooks").notice(done);
    Ok(page(
        status,
        "webhooks.html",
        &frame,
        minijinja::context! { endpoints, form, error, types => TENANT_EVENT_TYPES },
    ))
}

async fn list(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>,
) -> UiResult<Response> {
    list_page(&state, &user, &id, &row, q.done.as_deref(), None).await
}

async fn create(
    State(state): State<AppState>,
    Posted { user, id, tenant: row, form: f, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let input = NewEndpointInput {
        url: f.get("url").to_owned(),
        event_types: f.all("event_types"),
        description: f.filled("description").map(str::to_owned),
        enabled: Some(true),
    };
    match webhooks::create(&state, &id, input).await {
        Ok(endpoint) => {
            let secret = endpoint.secret.clone();
            endpoint_page(
                &state,
                &user,
                &id,
                &row,
                endpoint,
                Shown { secret: Some((secret, "created")), ..Shown::ok() },
            )
            .await
        }
        Err(e) => {
            let (status, message) = form_error(e)?;
            list_page(&state, &user, &id, &row, None, Some((status, FormValues::posted(&f), message))).await
        }
    }
}

/// What an endpoint's page shows besides the endpoint.
struct Shown {
    status: StatusCode,
    done: Option<String>,
    /// The secret, once, and why (`created` or `rotated`).
    secret: Option<(String, &'static str)>,
    form: Option<FormValues>,
    error: Option<String>,
    after: Option<String>,
}

impl Shown {
    fn ok() -> Self {
        Self { status: StatusCode::OK, done: None, secret: None, form: None, error: None, after: None }
    }
}

async fn endpoint_page(
    state: &AppState,
    user: &UiUser,
    id: &TenantId,
    row: &TenantRow,
    endpoint: EndpointRow,
    shown: Shown,
) -> UiResult<Response> {
    let mut rows = state.store.deliveries(id, &endpoint.id, shown.after.as_deref(), RECENT).await?;
    let next = if rows.len() as i64 > RECENT {
        rows.truncate(RECENT as usize);
        rows.last().map(|d| d.id.clone())
    } else {
        None
    };
    let deliveries: Vec<Delivery> = rows
        .into_iter()
        .map(|d| Delivery {
            next_attempt_at: (d.status == "pending").then(|| rfc3339(d.next_attempt_at)),
            id: d.id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            updated_at: rfc3339(d.updated_at),
        })
        .collect();
    let endpoint = Endpoint::from(endpoint);
    let form = shown.form.unwrap_or_else(|| FormValues::of(&endpoint));
    let (secret, secret_why) = match shown.secret {
        Some((s, why)) => (Some(s), Some(why)),
        None => (None, None),
    };
    let frame = Frame::new(user, Some(row), "webhooks").notice(shown.done.as_deref());
    Ok(page(
        shown.status,
        "webhook.html",
        &frame,
        minijinja::context! {
            endpoint, deliveries, next, older => shown.after.is_some(), form, error => shown.error,
            secret, secret_why, types => TENANT_EVENT_TYPES,
        },
    ))
}

#[derive(Deserialize)]
pub struct DetailQuery {
    done: Option<String>,
    /// The last delivery id of the previous page: show older deliveries.
    after: Option<String>,
}

async fn detail(
    State(state): State<AppState>,
    Path((_, wid)): Path<(String, String)>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<DetailQuery>>,
) -> UiResult<Response> {
    let endpoint = webhooks::own_endpoint(&state, &id, &wid).await?;
    let after = match q.after.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => Some(parse_id(a).ok_or(UiError::NotFound)?),
    };
    endpoint_page(&state, &user, &id, &row, endpoint, Shown { done: q.done, after, ..Shown::ok() }).await
}

async fn save(
    State(state): State<AppState>,
    Path((_, wid)): Path<(String, String)>,
    Posted { user, id, tenant: row, form: f, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let endpoint = webhooks::own_endpoint(&state, &id, &wid).await?;
    let patch = EndpointChanges {
        url: Some(f.get("url").to_owned()),
        event_types: Some(f.all("event_types")),
        // Empty clears the description.
        description: Some(f.get("description").to_owned()),
        enabled: None,
    };
    match webhooks::update(&state, &id, &endpoint.id, patch).await {
        Ok(_) => Ok(see_other(&format!("/ui/t/{id}/webhooks/{}", endpoint.id), "webhook_saved")),
        Err(e) => {
            let (status, message) = form_error(e)?;
            let shown = Shown { status, form: Some(FormValues::posted(&f)), error: Some(message), ..Shown::ok() };
            endpoint_page(&state, &user, &id, &row, endpoint, shown).await
        }
    }
}

async fn switch(
    State(state): State<AppState>,
    Path((_, wid)): Path<(String, String)>,
    Posted { id, form: f, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let enabled = match f.get("to") {
        "on" => true,
        "off" => false,
        _ => return Err(UiError::Api(ApiError::validation("choose on or off"))),
    };
    let patch = EndpointChanges { enabled: Some(enabled), ..Default::default() };
    let endpoint = webhooks::update(&state, &id, &wid, patch).await?;
    let done = if enabled { "webhook_enabled" } else { "webhook_disabled" };
    Ok(see_other(&format!("/ui/t/{id}/webhooks/{}", endpoint.id), done))
}

/// The new secret is on the answer to the POST, once: never in a URL.
async fn rotate(
    State(state): State<AppState>,
    Path((_, wid)): Path<(String, String)>,
    Posted { user, id, tenant: row, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let endpoint = webhooks::rotate(&state, &id, &wid).await?;
    let secret = endpoint.secret.clone();
    endpoint_page(&state, &user, &id, &row, endpoint, Shown { secret: Some((secret, "rotated")), ..Shown::ok() }).await
}

async fn test(
    State(state): State<AppState>,
    Path((_, wid)): Path<(String, String)>,
    Posted { id, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let endpoint = webhooks::own_endpoint(&state, &id, &wid).await?;
    webhooks::send_test(&state, &id, &endpoint).await?;
    Ok(see_other(&format!("/ui/t/{id}/webhooks/{}", endpoint.id), "webhook_test_queued"))
}

async fn replay(
    State(state): State<AppState>,
    Path((_, wid, did)): Path<(String, String, String)>,
    Posted { id, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let endpoint = webhooks::own_endpoint(&state, &id, &wid).await?;
    webhooks::replay(&state, &id, &endpoint, &did).await?;
    Ok(see_other(&format!("/ui/t/{id}/webhooks/{}", endpoint.id), "webhook_replayed"))
}

async fn confirm_delete(
    State(state): State<AppState>,
    Path((_, wid)): Path<(String, String)>,
    Scoped { user, id, tenant: row, .. }: Scoped,
) -> UiResult<Response> {
    let endpoint = Endpoint::from(webhooks::own_endpoint(&state, &id, &wid).await?);
    let frame = Frame::new(&user, Some(&row), "webhooks");
    Ok(page(StatusCode::OK, "webhook_delete.html", &frame, minijinja::context! { endpoint }))
}

async fn delete(
    State(state): State<AppState>,
    Path((_, wid)): Path<(String, String)>,
    Posted { id, .. }: Posted<Fields>,
) -> UiResult<Response> {
    webhooks::delete(&state, &id, &wid).await?;
    Ok(see_other(&format!("/ui/t/{id}/webhooks"), "webhook_deleted"))
}
