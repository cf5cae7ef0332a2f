//! Delivery analytics: a campaign's figures, and a tenant's (or everyone's)
//! figures per hour or day. Read from counters kept in the transactions that
//! store the events, never from a scan of them.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::events::query_time;
use super::{parse_id, Error, Result};
use crate::domain::{rfc3339, TenantId};
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
    /// Recipients who unsubscribed (one-click, the unsubscribe page or the
    /// preference centre), from everything or, through a campaign's mail,
    /// from its topic; each person once per campaign.
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

/// A campaign's figures, rates and ten most clicked links: the API's and the dashboard's.
pub async fn campaign(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<CampaignStats> {
    let id = parse_id(raw_id, "campaign")?;
    let c = state.store.campaign_counters(tenant_id, &id, 10).await?.ok_or(Error::NotFound("campaign"))?;
    Ok(CampaignStats {
        campaign_id: id,
        figures: figures(c.recipients, c.unsubscribed, &c.metrics),
        top_links: c.top_links.into_iter().map(|(link, unique_clicks)| LinkClicks { link, unique_clicks }).collect(),
    })
}

/// Most buckets one request may ask for.
const MAX_BUCKETS: i64 = 1000;

/// Figures per hour or day (UTC) from `from` to `to` (RFC 3339; by default
/// the last 7 days, or 48 hours), for one tenant or (`None`) everyone.
pub async fn series(
    state: &AppState,
    tenant: Option<&TenantId>,
    bucket: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Series> {
    let (bucket, bucket_ms) = match bucket {
        None | Some("") | Some("day") => ("day", DAY_MS),
        Some("hour") => ("hour", HOUR_MS),
        Some(_) => return Err(Error::validation("`bucket` must be `hour` or `day`")),
    };
    let to = query_time(to, "to")?.unwrap_or_else(|| state.store.now_ms());
    let default_span = if bucket == "day" { 7 * DAY_MS } else { 48 * HOUR_MS };
    let from = query_time(from, "from")?.unwrap_or(to.saturating_sub(default_span));
    if from < 0 || to < 0 {
        return Err(Error::validation("`from` and `to` must be after 1970"));
    }
    if from >= to {
        return Err(Error::validation("`from` must be before `to`"));
    }
    let from = from.div_euclid(bucket_ms) * bucket_ms;
    let count = (to - from + bucket_ms - 1) / bucket_ms;
    if count > MAX_BUCKETS {
        return Err(Error::validation(format!(
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
