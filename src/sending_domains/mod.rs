//! Sending domains: registering a tenant's domain with the provider, asking it
//! to verify, and a background re-check that settles pending domains without
//! anyone polling (DNS changes can take hours to be seen).

pub mod dns;

use std::sync::Arc;
use std::time::Duration;

use crate::domain::{DomainName, TenantId};
use crate::provider::{DeliveryProvider, DomainInfo, ProviderError};
use crate::store::{Store, TenantRow};

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("this customer has no domain yet")]
    NoDomain,
    #[error("this domain belongs to another customer")]
    Taken,
}

/// Registers `domain` with the provider for this tenant and stores the records to publish.
pub async fn register(
    store: &Store,
    provider: &dyn DeliveryProvider,
    tenant_id: &TenantId,
    domain: &DomainName,
) -> Result<TenantRow, DomainError> {
    // A domain belongs to one tenant: never let another send as it.
    if store.domain_owner(domain.as_str()).await?.is_some_and(|owner| owner != tenant_id.as_str()) {
        return Err(DomainError::Taken);
    }
    let info = provider.create_domain(domain.as_str()).await?;
    let records = serde_json::to_string(&info.records).unwrap_or_else(|_| "[]".into());
    // The unique index settles two tenants racing for the same domain.
    let row = store.set_tenant_domain(tenant_id, domain.as_str(), &info.id, &info.status, &records).await.map_err(
        |e| match e {
            crate::store::StoreError::Duplicate(_) => DomainError::Taken,
            e => DomainError::Store(e),
        },
    )?;
    row.ok_or(DomainError::NoDomain)
}

/// Asks the provider to verify, then reads back the current state.
pub async fn verify(
    store: &Store,
    provider: &dyn DeliveryProvider,
    tenant: &TenantRow,
) -> Result<TenantRow, DomainError> {
    let id = tenant.resend_domain_id.as_deref().ok_or(DomainError::NoDomain)?;
    provider.verify_domain(id).await?;
    refresh(store, provider, tenant).await
}

/// Reads the domain's state from the provider and stores it.
pub async fn refresh(
    store: &Store,
    provider: &dyn DeliveryProvider,
    tenant: &TenantRow,
) -> Result<TenantRow, DomainError> {
    let id = tenant.resend_domain_id.as_deref().ok_or(DomainError::NoDomain)?;
    let info: DomainInfo = provider.get_domain(id).await?;
    // Keep the records from registration when the provider does not repeat them.
    let records = (!info.records.is_empty()).then(|| serde_json::to_string(&info.records).unwrap_or_default());
    let row = store.update_domain_status(&tenant.id, &info.status, records.as_deref()).await?;
    row.ok_or(DomainError::NoDomain)
}

/// Re-checks every pending domain each `every` (`MAILROOM_DOMAIN_POLL_SECS`),
/// the first time one period after the start.
pub struct DomainRecheck {
    store: Store,
    provider: Arc<dyn DeliveryProvider>,
    every: Duration,
}

impl DomainRecheck {
    pub fn new(store: Store, provider: Arc<dyn DeliveryProvider>, every: Duration) -> Self {
        Self { store, provider, every }
    }

    /// One pass over the pending domains; failures are logged and retried at the next pass.
    pub async fn recheck(&self) {
        let pending = match self.store.tenants_with_pending_domains().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "could not list pending domains");
                return;
            }
        };
        for tenant in pending {
            match refresh(&self.store, self.provider.as_ref(), &tenant).await {
                Ok(row) if row.domain_verified() => tracing::info!(tenant = %tenant.id, "domain verified"),
                Ok(_) => {}
                Err(e) => tracing::warn!(tenant = %tenant.id, error = %e, "domain re-check failed"),
            }
        }
    }
}

impl crate::workers::Worker for DomainRecheck {
    fn name(&self) -> &'static str {
        "domain_recheck"
    }

    fn step(&self) -> futures::future::BoxFuture<'_, anyhow::Result<crate::workers::Step>> {
        Box::pin(async move {
            self.recheck().await;
            Ok(crate::workers::Step::Idle)
        })
    }

    fn cadence(&self) -> crate::workers::Cadence {
        crate::workers::Cadence::Every { every: self.every, first_now: false }
    }
}

/// Warnings for a send from the tenant's domain, from what mailroom last saw
/// in its DNS (no lookup in the request): a domain without DMARC still sends,
/// but Gmail and Yahoo expect one of bulk senders.
pub fn sending_warnings(tenant: &TenantRow) -> Vec<String> {
    let domain = tenant.domain_name.as_deref().unwrap_or_default();
    match tenant.dmarc_policy.as_deref() {
        Some("missing") => vec![format!(
            "{domain} publishes no DMARC record: Gmail and Yahoo may send this mail to spam; publish `{}` at _dmarc.{domain}",
            dns::suggested_dmarc(domain)
        )],
        None => vec![format!(
            "no DMARC record has been confirmed for {domain}; GET /customers/{}/domains/status checks its DNS",
            tenant.id
        )],
        Some(_) => Vec::new(),
    }
}
