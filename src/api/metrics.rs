//! `GET /metrics`: Prometheus text format. Counters and histograms are recorded
//! where things happen; queue depth is read from the database at scrape time,
//! so it is right whichever process did the work.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::ApiResult;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus metrics: queue depth by priority and status, provider requests by
/// outcome and error, retries, dead letters, rate-limit waits, provider latency,
/// webhook events by type.
#[utoipa::path(get, path = "/metrics", tag = "health", security(()), responses((status = 200, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let depth = state.store.queue_depth().await?;
    // Every lane and status is reported, zeros included, so a drained queue reads 0.
    for (priority, lane) in [(0, "transactional"), (1, "campaign")] {
        for status in ["queued", "sending", "paused", "dead"] {
            let n = depth.iter().find(|(p, s, _)| *p == priority && s == status).map_or(0, |(_, _, n)| *n);
            metrics::gauge!("mailroom_queue_depth", "priority" => lane, "status" => status).set(n as f64);
        }
    }
    let body = crate::telemetry::metrics_handle().map(|h| h.render()).unwrap_or_default();
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}
