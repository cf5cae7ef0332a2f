//! A tenant's sending domain: registering it with the provider, verifying
//! it, and its state with what DNS shows.

use serde_json::Value;

use super::{Error, Result};
use crate::domain::{DomainName, TenantId};
use crate::provider::ErrorClass;
use crate::sending_domains::{self, dns, DomainError};
use crate::state::AppState;
use crate::store::TenantRow;

impl From<DomainError> for Error {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NoDomain => {
                Error::precondition("no_domain", "no domain registered: call POST /customers/{id}/domains first")
            }
            DomainError::Provider(p) if p.class == ErrorClass::KeyRejected => Error::ProviderKey(format!(
                "the provider refused mailroom's RESEND_API_KEY for domain management ({}): a key with sending \
                 access only cannot add or verify domains; use a full-access key",
                p.name
            )),
            DomainError::Provider(p) if p.class == ErrorClass::Permanent && p.status.is_some_and(|s| s < 500) => {
                Error::Invalid { code: "provider_rejected", message: format!("the provider refused: {}", p.message) }
            }
            DomainError::Provider(p) => Error::Provider(p.to_string()),
            DomainError::Taken => Error::conflict("domain_taken", "this domain belongs to another customer"),
            DomainError::Store(e) => e.into(),
            DomainError::Db(e) => e.into(),
        }
    }
}

/// The DNS records the provider gave for the tenant's domain.
pub fn records(t: &TenantRow) -> Vec<Value> {
    t.domain_records.as_deref().and_then(|r| serde_json::from_str(r).ok()).unwrap_or_default()
}

/// A domain registered: the tenant as it is now, and the records to publish
/// (the provider's, and a DMARC record to start with).
pub struct Registered {
    pub domain: DomainName,
    pub tenant: TenantRow,
    pub dns_records: Vec<Value>,
}

/// Registers a tenant's sending domain with the provider.
pub async fn register(state: &AppState, tenant_id: &TenantId, raw: &str) -> Result<Registered> {
    let domain = DomainName::parse(raw).map_err(Error::validation)?;
    let row = sending_domains::register(&state.store, state.provider.as_ref(), tenant_id, &domain).await?;
    tracing::info!(tenant = %tenant_id, "domain registered");
    let dns_records = records(&row).into_iter().chain([dns::dmarc_record(domain.as_str())]).collect();
    Ok(Registered { domain, tenant: row, dns_records })
}

/// Asks the provider to verify the domain; the tenant as it is now.
pub async fn verify(state: &AppState, tenant_id: &TenantId) -> Result<TenantRow> {
    let tenant = state.store.tenant(tenant_id).await?.ok_or(Error::NotFound("customer"))?;
    Ok(sending_domains::verify(&state.store, state.provider.as_ref(), &tenant).await?)
}

/// The domain's state, the records to publish, and what DNS shows.
pub struct DomainState {
    pub tenant: TenantRow,
    pub domain: String,
    /// The provider's records and, unless the domain already has one, a DMARC record to start with.
    pub dns_records: Vec<Value>,
    pub checks: dns::DomainChecks,
}

/// The domain's state, records and DNS checks (fresh from the provider while unverified).
pub async fn status(state: &AppState, tenant_id: &TenantId) -> Result<DomainState> {
    let t_id = tenant_id;
    let mut row = state.store.tenant(t_id).await?.ok_or(Error::NotFound("customer"))?;
    if row.resend_domain_id.is_none() {
        return Err(DomainError::NoDomain.into());
    }
    if !row.domain_verified() {
        // Fresh from the provider when it answers; the stored state otherwise.
        match sending_domains::refresh(&state.store, state.provider.as_ref(), &row).await {
            Ok(fresh) => row = fresh,
            Err(e) => {
                tracing::warn!(tenant = %t_id, error = %e, "domain status from store; provider did not answer")
            }
        }
    }
    let domain = row.domain_name.clone().unwrap_or_default();
    let mut dns_records = records(&row);
    let checks = state.dns.check(&domain, &dns_records).await;
    // Remembered for sends, which warn without looking DNS up themselves.
    match (checks.dmarc.status, checks.dmarc.policy.as_deref()) {
        ("ok", policy) => state.store.set_dmarc_policy(t_id, policy.unwrap_or("none")).await?,
        ("missing", _) => {
            state.store.set_dmarc_policy(t_id, "missing").await?;
        }
        _ => {}
    }
    if checks.dmarc.status != "ok" {
        dns_records.push(dns::dmarc_record(&domain));
    }
    Ok(DomainState { tenant: row, domain, dns_records, checks })
}
