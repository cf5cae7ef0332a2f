//! The state every request handler shares. It sits below the API (handlers and
//! auth import it) and above the services it holds, so dependencies run one way:
//! `app` (composition) -> `api`/`ui`/`service`/`auth` -> `state` -> `outbox`/`delivery_events`/`store`/`provider`.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::Config;
use crate::delivery_events::{EventWriter, WebhookVerifier};
use crate::provider::DeliveryProvider;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub provider: Arc<dyn DeliveryProvider>,
    pub verifier: Arc<WebhookVerifier>,
    pub admin_key_hash: Arc<str>,
    pub config: Arc<Config>,
    /// Stores delivery events, many per transaction under load.
    pub events: EventWriter,
    /// Looks up tenants' domain records in DNS.
    pub dns: crate::sending_domains::dns::DnsChecker,
    /// Failed authentications per key, for the 429 throttle.
    pub auth_throttle: crate::auth::throttle::AuthThrottle,
    /// Renders mail and signs unsubscribe links.
    pub renderer: Arc<crate::render::Renderer>,
    /// Wakes the worker when mail is queued, so a transactional send goes out at once.
    pub wake: Arc<Notify>,
}
