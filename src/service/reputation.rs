//! A tenant's sending reputation: bounce and complaint rates over a sliding
//! window, the state they put it in, and the operator's resume.

use serde::Serialize;
use utoipa::ToSchema;

use super::{optional_text, Error, Result};
use crate::domain::reputation::ppm_to_fraction;
use crate::domain::{rfc3339, ReputationPolicy, ReputationState, TenantId};
use crate::state::AppState;
use crate::store::{ReputationChange, ResumeOutcome, TenantReputation};

/// History entries shown, newest first.
const HISTORY: i64 = 100;

/// A customer's sending reputation. Rates are fractions (0 to 1) over the
/// rolling window, judged only once `thresholds.min_sent` emails were sent in it.
#[derive(Serialize, ToSchema)]
pub struct Reputation {
    customer_id: String,
    name: String,
    /// `ok`, `warning` or `paused` (campaign mail held; transactional mail still goes).
    state: String,
    campaigns_paused: bool,
    /// When the state last changed (absent: never).
    state_since: Option<String>,
    /// The last admin resume: the window counts only what happened after it.
    resumed_at: Option<String>,
    /// Whether the window has enough mail (`min_sent`) for its rates to count.
    judged: bool,
    /// The standing in words, as every page shows it: `ok`, `warning`,
    /// `paused`, or `not judged (under {min_sent} sent)` for an `ok` with too
    /// little mail in the window to judge.
    verdict: String,
    window: Window,
    thresholds: Thresholds,
    /// State changes, newest first (only on a single customer's reputation).
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<HistoryEntry>>,
}

#[derive(Serialize, ToSchema)]
pub struct Window {
    /// Start of the window (RFC 3339): whole hours back, or the last resume.
    from: String,
    days: i64,
    /// Messages the provider accepted.
    sent: i64,
    delivered: i64,
    /// Permanent bounces only.
    hard_bounces: i64,
    complaints: i64,
    /// hard bounces / sent
    bounce_rate: f64,
    /// complaints / delivered
    complaint_rate: f64,
}

/// Rates as fractions (0.04 is 4%).
#[derive(Serialize, ToSchema)]
pub struct Thresholds {
    min_sent: i64,
    bounce_warning: f64,
    bounce_pause: f64,
    complaint_warning: f64,
    complaint_pause: f64,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryEntry {
    id: String,
    at: String,
    from: String,
    to: String,
    /// `system` (the guard) or `admin` (a resume).
    actor: String,
    reason: String,
    /// The window's figures when it changed.
    sent: i64,
    delivered: i64,
    hard_bounces: i64,
    complaints: i64,
}

impl From<ReputationChange> for HistoryEntry {
    fn from(c: ReputationChange) -> Self {
        Self {
            id: c.id,
            at: rfc3339(c.created_at),
            from: c.from_state,
            to: c.to_state,
            actor: c.actor,
            reason: c.reason,
            sent: c.sent,
            delivered: c.delivered,
            hard_bounces: c.bounced,
            complaints: c.complained,
        }
    }
}

fn reputation(r: TenantReputation, p: &ReputationPolicy, history: Option<Vec<ReputationChange>>) -> Reputation {
    Reputation {
        customer_id: r.tenant_id,
        name: r.name,
        state: r.state.as_str().to_owned(),
        campaigns_paused: r.state == ReputationState::Paused,
        state_since: r.changed_at.map(rfc3339),
        resumed_at: r.resumed_at.map(rfc3339),
        judged: p.counts(&r.counts),
        verdict: p.verdict(r.state, &r.counts).words(),
        window: Window {
            from: rfc3339(r.window_from),
            days: p.window_ms / crate::store::DAY_MS,
            sent: r.counts.sent,
            delivered: r.counts.delivered,
            hard_bounces: r.counts.bounced,
            complaints: r.counts.complained,
            bounce_rate: r.counts.bounce_rate(),
            complaint_rate: r.counts.complaint_rate(),
        },
        thresholds: Thresholds {
            min_sent: p.min_sent,
            bounce_warning: ppm_to_fraction(p.bounce_warning_ppm),
            bounce_pause: ppm_to_fraction(p.bounce_pause_ppm),
            complaint_warning: ppm_to_fraction(p.complaint_warning_ppm),
            complaint_pause: ppm_to_fraction(p.complaint_pause_ppm),
        },
        history: history.map(|h| h.into_iter().map(HistoryEntry::from).collect()),
    }
}

/// One tenant's reputation with its history: `GET /customers/{id}/reputation`, and the dashboard's page.
pub async fn detail(state: &AppState, tenant_id: &TenantId) -> Result<Reputation> {
    let r = state.store.tenant_reputation(tenant_id).await?.ok_or(Error::NotFound("customer"))?;
    let history = state.store.reputation_history(tenant_id, HISTORY).await?;
    Ok(reputation(r, state.store.reputation_policy(), Some(history)))
}

/// Resumes a paused tenant (the caller checked it is the admin): the API's
/// resume, and the dashboard's button. 409 `not_paused` otherwise.
pub async fn resume_tenant(state: &AppState, tenant_id: &TenantId, note: Option<&str>) -> Result<Reputation> {
    let note = optional_text(note, "note", 500)?;
    match state.store.resume_reputation(tenant_id, note.as_deref()).await? {
        ResumeOutcome::Resumed => {
            // Its held campaign mail is due again: let the worker look now.
            state.wake.notify_one();
            detail(state, tenant_id).await
        }
        ResumeOutcome::NotPaused(s) => Err(Error::conflict(
            "not_paused",
            format!("the customer's reputation is `{}`, not `paused`: there is nothing to resume", s.as_str()),
        )),
    }
}

/// Every tenant's reputation, worst first (the caller checked it is the admin):
/// the API's list, the dashboard's reputation list and its tenants' health
/// column. A constant number of queries however many tenants there are.
pub async fn all(state: &AppState) -> Result<Vec<Reputation>> {
    let p = *state.store.reputation_policy();
    let all = state.store.all_reputations().await?;
    Ok(all.into_iter().map(|r| reputation(r, &p, None)).collect())
}
