//! A tenant's webhook endpoints and their recent deliveries, read-only
//! (endpoints are created, changed and replayed through the API for now).
//! Signing secrets are never shown.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::{page, scope, Frame, UiResult, UiUser};
use crate::domain::rfc3339;
use crate::state::AppState;

/// Deliveries shown per endpoint.
const RECENT: i64 = 20;

pub fn router() -> Router<AppState> {
    Router::new().route("/ui/t/{tid}/webhooks", get(list))
}

#[derive(Serialize)]
struct Delivery {
    event_type: String,
    status: String,
    attempts: i64,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    updated_at: String,
}

#[derive(Serialize)]
struct Endpoint {
    url: String,
    description: Option<String>,
    event_types: Vec<String>,
    enabled: bool,
    disabled_reason: Option<String>,
    consecutive_failures: i64,
    deliveries: Vec<Delivery>,
}

async fn list(State(state): State<AppState>, user: UiUser, Path(tid): Path<String>) -> UiResult<Response> {
    let (id, row) = scope(&state, &user, &tid).await?;
    let mut endpoints = Vec::new();
    for e in state.store.endpoints(&id).await? {
        let deliveries = state
            .store
            .deliveries(&id, &e.id, None, RECENT)
            .await?
            .into_iter()
            .take(RECENT as usize)
            .map(|d| Delivery {
                event_type: d.event_type,
                status: d.status,
                attempts: d.attempts,
                last_status_code: d.last_status_code,
                last_error: d.last_error,
                updated_at: rfc3339(d.updated_at),
            })
            .collect();
        endpoints.push(Endpoint {
            event_types: e.event_types(),
            url: e.url,
            description: e.description,
            enabled: e.enabled == 1,
            disabled_reason: e.disabled_reason,
            consecutive_failures: e.consecutive_failures,
            deliveries,
        });
    }
    let frame = Frame::new(&user, Some(&row), "webhooks");
    Ok(page(StatusCode::OK, "webhooks.html", &frame, minijinja::context! { endpoints }))
}
