//! Every provider request goes through the account's pacer, not only sends:
//! Resend's rate limit counts every call of the team (domain calls included).

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::Pacer;
use crate::provider::{BatchAnswer, DeliveryProvider, DomainInfo, ErrorClass, ProviderError, ProviderResult};
use crate::store::Store;

/// A provider whose domain calls wait for a send slot (as transactional
/// traffic: an operator is waiting). Sends pass straight through: the outbox
/// books their slots itself, with campaign or transactional priority.
pub struct PacedProvider {
    inner: Arc<dyn DeliveryProvider>,
    pacer: Pacer,
    store: Store,
}

impl PacedProvider {
    pub fn new(inner: Arc<dyn DeliveryProvider>, pacer: Pacer, store: Store) -> Self {
        Self { inner, pacer, store }
    }

    async fn turn(&self) -> ProviderResult<()> {
        self.pacer.wait_turn(&self.store, true).await.map(|_| ()).map_err(|e| ProviderError {
            class: ErrorClass::Retryable,
            status: None,
            name: "pacer_unavailable".into(),
            message: format!("could not book a request slot: {e}"),
        })
    }

    fn learn(&self) {
        if let Some(limit) = self.inner.account_rate_limit() {
            self.pacer.learn_limit(limit);
        }
    }
}

impl DeliveryProvider for PacedProvider {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn exhausted_until_ms(&self) -> Option<i64> {
        self.inner.exhausted_until_ms()
    }

    fn account_rate_limit(&self) -> Option<u32> {
        self.inner.account_rate_limit()
    }

    fn create_domain<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<DomainInfo>> {
        async move {
            self.turn().await?;
            let r = self.inner.create_domain(name).await;
            self.learn();
            r
        }
        .boxed()
    }

    fn verify_domain<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<()>> {
        async move {
            self.turn().await?;
            let r = self.inner.verify_domain(id).await;
            self.learn();
            r
        }
        .boxed()
    }

    fn get_domain<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<DomainInfo>> {
        async move {
            self.turn().await?;
            let r = self.inner.get_domain(id).await;
            self.learn();
            r
        }
        .boxed()
    }

    fn send_email<'a>(&'a self, idempotency_key: &'a str, body: &'a str) -> BoxFuture<'a, ProviderResult<String>> {
        self.inner.send_email(idempotency_key, body)
    }

    fn send_batch<'a>(&'a self, idempotency_key: &'a str, body: &'a str) -> BoxFuture<'a, ProviderResult<BatchAnswer>> {
        self.inner.send_batch(idempotency_key, body)
    }
}
