//! `GET /metrics`: Prometheus text format, for the admin key or
//! `MAILROOM_METRICS_TOKEN`. Counters and histograms are recorded where things
//! happen. Queue depth comes from the database, but not at scrape time: a
//! background task refreshes it every few seconds, so however often (or by
//! however many) /metrics is scraped, the database sees one small query.

use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use tokio::sync::watch;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::MetricsReader;
use crate::state::AppState;
use crate::store::Store;

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

/// Refreshes the queue-depth gauges every `every` until `stop` turns true.
pub async fn run_queue_gauges(store: Store, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        match store.queue_depth().await {
            Ok(depth) => {
                // Every lane and status is reported, zeros included, so a drained queue reads 0.
                for (priority, lane) in [(0, "transactional"), (1, "campaign")] {
                    for status in ["queued", "sending", "paused", "dead"] {
                        let n = depth.iter().find(|(p, s, _)| *p == priority && s == status).map_or(0, |(_, _, n)| *n);
                        metrics::gauge!("mailroom_queue_depth", "priority" => lane, "status" => status).set(n as f64);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the queue depth"),
        }
        // Tenants per reputation state (zeros included, so a recovery reads 0).
        match store.reputation_state_counts().await {
            Ok(counts) => {
                for (state, n) in counts {
                    metrics::gauge!("mailroom_tenants_by_reputation", "state" => state.as_str()).set(n as f64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the reputation states"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
