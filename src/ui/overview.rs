//! A tenant's overview: its sending domain with the DNS records to publish,
//! and thirty days of delivery figures as a chart.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::chart::line_chart;
use super::operator::Done;
use super::session::CsrfOnly;
use super::tenant_scope::{Posted, Scoped};
use super::{page, see_other, Frame, UiResult};
use crate::sending_domains::dns;
use crate::service::sending_domains as domains;
use crate::state::AppState;
use crate::store::DAY_MS;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}", get(overview))
        .route("/ui/t/{tid}/domain", post(add_domain))
        .route("/ui/t/{tid}/domain/verify", post(verify_domain))
}

const CHART_DAYS: i64 = 30;

async fn overview(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>,
) -> UiResult<Response> {
    // The records as stored when the domain was registered or last checked
    // (no DNS lookups on a page view), with a DMARC record to start from.
    let records: Vec<serde_json::Value> = match &row.domain_name {
        Some(d) => domains::records(&row).into_iter().chain([dns::dmarc_record(d)]).collect(),
        None => Vec::new(),
    };
    let now = state.store.now_ms();
    let from = (now - (CHART_DAYS - 1) * DAY_MS).div_euclid(DAY_MS) * DAY_MS;
    let data = state.store.bucket_counters(Some(&id), from, now + 1, DAY_MS).await?;
    let days: Vec<i64> = (0..CHART_DAYS).map(|i| from + i * DAY_MS).collect();
    let labels: Vec<String> =
        days.iter().map(|d| crate::domain::rfc3339(*d).chars().skip(5).take(5).collect()).collect();
    let metric = |k: &str| -> Vec<i64> {
        days.iter().map(|d| data.get(d).and_then(|b| b.metrics.get(k).copied()).unwrap_or(0)).collect()
    };
    let chart = line_chart(
        &labels,
        vec![
            ("Sent", "s-sent", metric("sent")),
            ("Delivered", "s-delivered", metric("delivered")),
            ("Opened", "s-opened", metric("opened")),
            ("Bounced", "s-bounced", metric("bounced")),
        ],
    );
    // Subscribed, unsuppressed: who a campaign to everyone would reach now.
    let contacts = state.store.audience_count(&id, &crate::store::Targeting::All).await?;
    let frame = Frame::new(&user, Some(&row), "overview").notice(q.done.as_deref());
    let domain = minijinja::context! {
        name => row.domain_name.clone(),
        status => row.domain_status.clone(),
        verified => row.domain_verified(),
    };
    Ok(page(StatusCode::OK, "overview.html", &frame, minijinja::context! { domain, records, chart, contacts }))
}

#[derive(Deserialize)]
pub struct DomainForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    domain_name: String,
}

async fn add_domain(
    State(state): State<AppState>,
    Posted { id, form: Form(f), .. }: Posted<Form<DomainForm>>,
) -> UiResult<Response> {
    domains::register(&state, &id, &f.domain_name).await?;
    Ok(see_other(&format!("/ui/t/{id}"), "domain_added"))
}

async fn verify_domain(State(state): State<AppState>, Posted { id, .. }: Posted<Form<CsrfOnly>>) -> UiResult<Response> {
    let verified = domains::verify(&state, &id).await?.domain_verified();
    Ok(see_other(&format!("/ui/t/{id}"), if verified { "domain_verified" } else { "domain_pending" }))
}

super::tenant_scope::csrf_field!(DomainForm);
