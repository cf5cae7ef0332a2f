//! A campaign's funnel and figures as its page shows them. Both parts are one
//! reading of the campaign's counters (`service::stats::campaign`, what
//! `GET /customers/{id}/campaigns/{cid}/stats` answers), formatted once here:
//! the page draws them and its live poll answers the same values, so the
//! funnel, the figures and the API cannot disagree, during a send or after.
//! (Counting message statuses instead would put an opened message outside
//! "delivered", and a figure the page never refreshes would stay at 0.)

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::format::thousands;
use super::UiResult;
use crate::domain::TenantId;
use crate::service::stats;
use crate::state::AppState;

/// One step of the funnel: its label, the figure it reads, and the element
/// (`data-live`) that shows it.
const FUNNEL: [(&str, &str, &str); 5] = [
    ("Queued", "recipients", "queued_total"),
    ("Sent", "sent", "sent_total"),
    ("Delivered", "delivered", "delivered_total"),
    ("Opened", "unique_opens", "opened_total"),
    ("Clicked", "unique_clicks", "clicked_total"),
];

/// Counts shown in the figures' sentence (`fig-{name}`).
const COUNTS: [&str; 7] =
    ["sent", "delivered", "unique_opens", "unique_clicks", "bounced", "complained", "unsubscribed"];

/// Rates shown as percentages (`fig-{name}`), with their decimals: complaints
/// matter at a hundredth of a percent (Resend's limit is 0.08%).
const RATES: [(&str, usize); 5] =
    [("delivery_rate", 1), ("open_rate", 1), ("click_rate", 1), ("bounce_rate", 1), ("complaint_rate", 2)];

#[derive(Serialize)]
pub(super) struct FunnelStep {
    label: &'static str,
    key: &'static str,
    value: i64,
}

/// What the page shows of a campaign's counters.
#[derive(Serialize)]
pub(super) struct CampaignFigures {
    /// The funnel's steps, in order; a bar's maximum is the first (the recipients).
    funnel: Vec<FunnelStep>,
    /// Every figure the page shows, formatted, by its `data-live` name: what
    /// the page is drawn with and what its poll sets again.
    shown: BTreeMap<String, String>,
    /// The ten most clicked links.
    top_links: Value,
}

/// The campaign's figures from its counters (404 for another tenant's campaign).
pub(super) async fn campaign_figures(state: &AppState, tenant: &TenantId, cid: &str) -> UiResult<CampaignFigures> {
    let stats = serde_json::to_value(stats::campaign(state, tenant, cid).await?).unwrap_or_default();
    Ok(from_stats(&stats))
}

fn from_stats(stats: &Value) -> CampaignFigures {
    let n = |k: &str| stats[k].as_i64().unwrap_or(0);
    let mut shown = BTreeMap::new();
    let funnel: Vec<FunnelStep> = FUNNEL
        .iter()
        .map(|(label, figure, key)| {
            shown.insert((*key).to_owned(), thousands(n(figure)));
            FunnelStep { label, key, value: n(figure) }
        })
        .collect();
    for k in COUNTS {
        shown.insert(format!("fig-{k}"), thousands(n(k)));
    }
    for (k, decimals) in RATES {
        let rate = stats["rates"][k].as_f64().unwrap_or(0.0) * 100.0;
        shown.insert(format!("fig-{k}"), format!("{rate:.decimals$}%"));
    }
    CampaignFigures { funnel, shown, top_links: stats["top_links"].clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_funnel_and_the_figures_read_the_same_counters() {
        let stats = serde_json::json!({
            "recipients": 1200, "sent": 1100, "delivered": 1050, "unique_opens": 300, "unique_clicks": 40,
            "bounced": 50, "complained": 1, "unsubscribed": 2,
            "rates": { "delivery_rate": 1050.0 / 1100.0, "open_rate": 300.0 / 1050.0, "click_rate": 40.0 / 1050.0,
                       "bounce_rate": 50.0 / 1100.0, "complaint_rate": 1.0 / 1050.0 },
            "top_links": []
        });
        let f = from_stats(&stats);
        assert_eq!(f.shown["delivered_total"], "1,050");
        assert_eq!(f.shown["fig-delivered"], f.shown["delivered_total"]);
        assert_eq!(f.shown["fig-sent"], f.shown["sent_total"]);
        assert_eq!(f.shown["fig-delivery_rate"], "95.5%");
        assert_eq!(f.shown["fig-complaint_rate"], "0.10%");
        let values: Vec<i64> = f.funnel.iter().map(|s| s.value).collect();
        assert_eq!(values, [1200, 1100, 1050, 300, 40]);
    }
}
