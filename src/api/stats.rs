//! Delivery analytics: a campaign's figures, and a customer's (or, for the
//! operator, everyone's) figures per hour or day. Read from counters kept in
//! the transactions that store the events, never from a scan of them.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::events::query_time;
use super::path_id;
use crate::auth::{Admin, TenantAccess};
use crate::domain::{now_ms, rfc3339, TenantId};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{Bucket, DAY_MS, HOUR_MS};

/// Delivery figures. Each counts messages, once each: a message opened five
/// times is one open. **Opens are directional**: Apple Mail Privacy Protection
/// (and some security scanners) pre-fetch images, so an open may not be a
/// person reading; clicks and replies are the stronger signal.
#[derive(Serialize, ToSchema, Default, Clone)]
pub struct Figures {
    /// Messages queued for the campaign(s) (per bucket: campaigns created in it).
    recipients: i64,
    /// Messages the provider accepted.
    sent: i64,
    delivered: i64,
    delivery_delayed: i64,
    /// Messages opened at least once (directional: see above).
    unique_opens: i64,
    /// Messages with at least one click.
    unique_clicks: i64,
    /// Messages that bounced: `bounced_hard` (Permanent) plus `bounced_soft` (Transient or Undetermined).
    bounced: i64,
    bounced_hard: i64,
    bounced_soft: i64,
    complained: i64,
    /// Recipients who unsubscribed (one-click or the unsubscribe page).
    unsubscribed: i64,
    failed: i64,
    rates: Rates,
}

/// Ratios from 0 to 1; 0 when the denominator is 0.
#[derive(Serialize, ToSchema, Default, Clone)]
pub struct Rates {
    /// delivered / sent
    delivery_rate: f64,
    /// unique opens / delivered (directional)
    open_rate: f64,
    /// unique clicks / delivered
    click_rate: f64,
    /// bounced / sent (Resend may pause an account above 4%)
    bounce_rate: f64,
    /// complained / delivered (keep under 0.08%)
    complaint_rate: f64,
}

fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn figures(recipients: i64, unsubscribed: i64, m: &BTreeMap<String, i64>) -> Figures {
    let n = |k: &str| m.get(k).copied().unwrap_or(0);
    let (sent, delivered, bounced, complained) = (n("sent"), n("delivered"), n("bounced"), n("complained"));
    Figures {
        recipients,
        sent,
        delivered,
        delivery_delayed: n("delivery_delayed"),
        unique_opens: n("opened"),
        unique_clicks: n("clicked"),
        bounced,
        bounced_hard: n("bounced_hard"),
        bounced_soft: n("bounced_soft"),
        complained,
        unsubscribed,
        failed: n("failed"),
        rates: Rates {
            delivery_rate: ratio(delivered, sent),
            open_rate: ratio(n("opened"), delivered),
            click_rate: ratio(n("clicked"), delivered),
            bounce_rate: ratio(bounced, sent),
            complaint_rate: ratio(complained, delivered),
        },
    }
}

#[derive(Serialize, ToSchema)]
pub struct LinkClicks {
    link: String,
    /// Messages in which this link was clicked at least once.
    unique_clicks: i64,
}

#[derive(Serialize, ToSchema)]
pub struct CampaignStats {
    campaign_id: String,
    #[serde(flatten)]
    figures: Figures,
    /// The ten most clicked links.
    top_links: Vec<LinkClicks>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SeriesParams {
    /// Start (RFC 3339), rounded down to its bucket; default: 7 days (`day`) or 48 hours (`hour`) before `to`.
    from: Option<String>,
    /// End, exclusive (RFC 3339); default now.
    to: Option<String>,
    /// `hour` or `day` (UTC; default `day`).
    bucket: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BucketFigures {
    /// The bucket's start (RFC 3339, UTC).
    start: String,
    #[serde(flatten)]
    figures: Figures,
}

#[derive(Serialize, ToSchema)]
pub struct Series {
    from: String,
    to: String,
    bucket: String,
    /// The figures over the whole range.
    totals: Figures,
    /// Every bucket of the range, oldest first (empty ones included, for charts).
    buckets: Vec<BucketFigures>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(campaign_stats)).routes(routes!(customer_stats)).routes(routes!(all_stats))
}

/// A campaign's delivery figures and rates, and its most clicked links.
/// Each figure counts messages once (unique opens, unique clicks); duplicate
/// and out-of-order provider events do not change them. Opens are directional:
/// Apple Mail Privacy Protection pre-fetches images, inflating opens.
#[utoipa::path(get, path = "/customers/{id}/campaigns/{cid}/stats", tag = "stats",
    params(("id" = String, Path), ("cid" = String, Path)),
    responses((status = 200, body = CampaignStats), (status = 404, body = crate::error::ErrorBody)))]
async fn campaign_stats(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<CampaignStats>> {
    Ok(Json(campaign(&state, &t.tenant_id, &ids.1).await?))
}

/// A campaign's figures, rates and ten most clicked links: the API's and the dashboard's.
pub(crate) async fn campaign(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> ApiResult<CampaignStats> {
    let id = path_id(raw_id, "campaign")?;
    let c = state.store.campaign_counters(tenant_id, &id, 10).await?.ok_or(ApiError::NotFound("campaign"))?;
    Ok(CampaignStats {
        campaign_id: id,
        figures: figures(c.recipients, c.unsubscribed, &c.metrics),
        top_links: c.top_links.into_iter().map(|(link, unique_clicks)| LinkClicks { link, unique_clicks }).collect(),
    })
}

/// The customer's delivery figures per hour or day (UTC), for charts. A
/// message counts in the bucket of its first event of each kind. Opens are
/// directional (Apple Mail Privacy Protection pre-fetches images).
#[utoipa::path(get, path = "/customers/{id}/stats", tag = "stats", params(("id" = String, Path), SeriesParams),
    responses((status = 200, body = Series), (status = 422, body = crate::error::ErrorBody)))]
async fn customer_stats(
    t: TenantAccess,
    State(state): State<AppState>,
    params: Result<Query<SeriesParams>, QueryRejection>,
) -> ApiResult<Json<Series>> {
    series(&state, Some(&t.tenant_id), params).await.map(Json)
}

/// Every customer's delivery figures together, per hour or day (admin key only).
/// Opens are directional (Apple Mail Privacy Protection pre-fetches images).
#[utoipa::path(get, path = "/stats", tag = "stats", params(SeriesParams),
    responses((status = 200, body = Series), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
async fn all_stats(
    _admin: Admin,
    State(state): State<AppState>,
    params: Result<Query<SeriesParams>, QueryRejection>,
) -> ApiResult<Json<Series>> {
    series(&state, None, params).await.map(Json)
}

/// Most buckets one request may ask for.
const MAX_BUCKETS: i64 = 1000;

async fn series(
    state: &AppState,
    tenant: Option<&TenantId>,
    params: Result<Query<SeriesParams>, QueryRejection>,
) -> ApiResult<Series> {
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    let (bucket, bucket_ms) = match params.bucket.as_deref() {
        None | Some("") | Some("day") => ("day", DAY_MS),
        Some("hour") => ("hour", HOUR_MS),
        Some(_) => return Err(ApiError::validation("`bucket` must be `hour` or `day`")),
    };
    let to = query_time(params.to.as_deref(), "to")?.unwrap_or_else(now_ms);
    let default_span = if bucket == "day" { 7 * DAY_MS } else { 48 * HOUR_MS };
    let from = query_time(params.from.as_deref(), "from")?.unwrap_or(to.saturating_sub(default_span));
    if from < 0 || to < 0 {
        return Err(ApiError::validation("`from` and `to` must be after 1970"));
    }
    if from >= to {
        return Err(ApiError::validation("`from` must be before `to`"));
    }
    let from = from.div_euclid(bucket_ms) * bucket_ms;
    let count = (to - from + bucket_ms - 1) / bucket_ms;
    if count > MAX_BUCKETS {
        return Err(ApiError::validation(format!(
            "that range has {count} {bucket} buckets; at most {MAX_BUCKETS} per request"
        )));
    }
    let data = state.store.bucket_counters(tenant, from, to, bucket_ms).await?;
    let mut total = Bucket::default();
    let mut buckets = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for i in 0..count {
        let start = from + i * bucket_ms;
        let b = data.get(&start).cloned().unwrap_or_default();
        total.recipients += b.recipients;
        total.unsubscribed += b.unsubscribed;
        for (k, n) in &b.metrics {
            *total.metrics.entry(k.clone()).or_default() += n;
        }
        buckets
            .push(BucketFigures { start: rfc3339(start), figures: figures(b.recipients, b.unsubscribed, &b.metrics) });
    }
    Ok(Series {
        from: rfc3339(from),
        to: rfc3339(to),
        bucket: bucket.to_owned(),
        totals: figures(total.recipients, total.unsubscribed, &total.metrics),
        buckets,
    })
}
