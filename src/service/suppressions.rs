//! A tenant's suppression list: addresses that get no mail (bounces,
//! complaints, unsubscribes, and addresses added by hand).

use super::{Error, Result};
use crate::domain::{EmailAddress, TenantId};
use crate::state::AppState;
use crate::store::{SuppressionRow, Unsuppress};

/// Most addresses one request may add.
const ADD_MAX: usize = 1000;
/// The reasons an address is on the list.
pub const REASONS: [&str; 7] =
    ["bounced", "soft_bounced", "complained", "unsubscribed", "manual", "automation", "erased"];

/// A page of the list in address order, after `after`, optionally of one
/// reason; one row more than `limit` when there is a next page. Returns the
/// reason filter as checked.
pub async fn list<'r>(
    state: &AppState,
    tenant_id: &TenantId,
    reason: Option<&'r str>,
    after: Option<String>,
    limit: i64,
) -> Result<(Vec<SuppressionRow>, Option<&'r str>)> {
    let reason = match reason.filter(|r| !r.is_empty()) {
        Some(r) if !REASONS.contains(&r) => {
            return Err(Error::validation(format!("`reason` must be one of {}", REASONS.join(", "))))
        }
        r => r,
    };
    let after = after.unwrap_or_default().to_lowercase();
    crate::domain::check_single_line(&after, "after").map_err(Error::validation)?;
    Ok((state.store.suppressions(tenant_id, reason, &after, limit).await?, reason))
}

/// Suppresses addresses by hand (reason `manual`, source `api`): what `POST
/// /customers/{id}/suppressions` does, and the dashboard's form. Returns how
/// many were newly suppressed.
pub async fn add(state: &AppState, tenant_id: &TenantId, raw: &[String]) -> Result<u64> {
    if raw.is_empty() || raw.len() > ADD_MAX {
        return Err(Error::validation(format!("`emails` must hold 1 to {ADD_MAX} addresses")));
    }
    let mut emails = Vec::with_capacity(raw.len());
    for (i, raw) in raw.iter().enumerate() {
        let email = EmailAddress::parse(raw)
            .map_err(|e| Error::Invalid { code: "invalid_email", message: format!("emails[{i}]: {e}") })?;
        emails.push(email.normalized());
    }
    emails.sort();
    emails.dedup();
    Ok(state.store.add_suppressions(tenant_id, &emails, "manual", "api").await?)
}

/// Takes an address off the tenant's list: a `complained` entry only with
/// `force` (409 `complaint_needs_force` otherwise), an `erased` one never
/// (409 `erased_address`); 404 when it is not there.
pub async fn remove(state: &AppState, tenant_id: &TenantId, email: &str, force: bool) -> Result<()> {
    let email = EmailAddress::parse(email).map_err(|_| Error::NotFound("suppression"))?;
    match state.store.remove_suppression(tenant_id, &email.normalized(), force).await? {
        Unsuppress::Removed => Ok(()),
        Unsuppress::NotFound => Err(Error::NotFound("suppression")),
        Unsuppress::Erased => Err(Error::conflict(
            "erased_address",
            "this address was erased at the person's request; only their confirmed signup (double opt-in) lifts this",
        )),
        Unsuppress::NeedsForce => Err(Error::conflict(
            "complaint_needs_force",
            "this address complained (marked mail as spam); remove it with ?force=true only if the recipient asked to be mailed again",
        )),
    }
}
