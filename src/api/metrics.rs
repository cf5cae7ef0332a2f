//! `GET /metrics`: Prometheus text format, for the admin key or
//! `MAILROOM_METRICS_TOKEN`. Counters and histograms are recorded where things
//! happen. Queue depth comes from the database, but not at scrape time: the
//! `queue_gauges` worker (`crate::workers::queue_gauges`) refreshes it every few seconds.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::MetricsReader;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus metrics: queue depth by priority and status (refreshed every few
/// seconds), provider requests by outcome and error, retries, dead letters,
/// rate-limit waits, provider latency, webhook events by type, customers per
/// reputation state (`mailroom_tenants_by_reputation`).
#[utoipa::path(get, path = "/metrics", tag = "health", security(("bearer" = [])),
    responses((status = 200, content_type = "text/plain"), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
async fn metrics(_: MetricsReader) -> impl IntoResponse {
    let body = crate::telemetry::metrics_handle().map(|h| h.render()).unwrap_or_default();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
