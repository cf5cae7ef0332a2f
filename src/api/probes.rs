use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Status {
    status: &'static str,
    service: &'static str,
    version: &'static str,
    provider: &'static str,
    docs: &'static str,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(root)).routes(routes!(healthz)).routes(routes!(readyz))
}

/// Service status.
#[utoipa::path(get, path = "/", tag = "health", security(()), responses((status = 200, body = Status)))]
async fn root(State(state): State<AppState>) -> Json<Status> {
    Json(Status {
        status: "ok",
        service: "mailroom",
        version: env!("CARGO_PKG_VERSION"),
        provider: state.provider.name(),
        docs: "/docs",
    })
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()), responses((status = 200)))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: the database answers and its schema is this build's.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()), responses((status = 200), (status = 503, body = crate::error::ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    state.store.ping().await.map_err(|_| ApiError::Unavailable("the database is not reachable".into()))?;
    let pending = state
        .store
        .migrations_pending()
        .await
        .map_err(|_| ApiError::Unavailable("the database is not reachable".into()))?;
    if pending {
        return Err(ApiError::Unavailable("database migrations are pending: run `mailroom migrate`".into()));
    }
    Ok(Json(serde_json::json!({ "status": "ready" })))
}
