//! Builds the state and the router; used by `main` and by the tests (which bind port 0).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};

use crate::automations::{Engine, FinishedCampaigns};
use crate::config::{Config, ProviderKind};
use crate::delivery_events::{EventWriter, SimulatedFeed, WebhookVerifier};
use crate::domain::{generate_key, hash_key};
use crate::outbox::{Outbox, OutboxSettings, PacedProvider};
use crate::provider::resend::ResendProvider;
use crate::provider::simulated::SimulatedProvider;
use crate::provider::DeliveryProvider;
use crate::render::isolation::{RenderProcessSettings, RenderProcesses};
use crate::render::unsubscribe::UnsubscribeLinks;
use crate::render::Renderer;
use crate::sending_domains::DomainRecheck;
use crate::state::AppState;
use crate::store::Store;
use crate::tenant_webhooks::{Notifier, NotifierSettings};
use crate::workers::pending_expiry::PendingExpiry;
use crate::workers::queue_gauges::QueueGauges;
use crate::workers::reputation_sweep::ReputationSweep;
use crate::workers::{Activity, Runner, Worker, Workers};

/// Largest request body accepted: room for a campaign's html at its limit
/// (`MAILROOM_MAX_HTML_BYTES`, 512 KiB by default) even when JSON escaping grows it.
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The parts shared by `serve` and `worker`: database, provider, outbox.
pub struct Core {
    pub store: Store,
    pub provider: Arc<dyn DeliveryProvider>,
    pub outbox: Outbox,
    pub wake: Arc<Notify>,
    pub events: EventWriter,
    pub renderer: Arc<Renderer>,
    /// The sandbox provider's event feed (sandbox mode only).
    feed: Option<Arc<SimulatedFeed>>,
    /// What this process's runner has in hand, for tests that step the same workers.
    activity: Arc<Activity>,
}

impl Core {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        // Install the metrics recorder before anything records.
        let _ = crate::telemetry::metrics_handle();
        let store = Store::connect(&config.database_url, config.db_max_connections)
            .await?
            .with_soft_bounce(config.soft_bounce_limit, config.soft_bounce_days)
            .with_reputation(config.reputation_policy());
        store.migrate().await?;
        let secret = server_secret(&store, config).await?;
        let store = store.with_address_key(&secret);
        let mut feed = None;
        let events = EventWriter::spawn(store.clone());
        let provider: Arc<dyn DeliveryProvider> = match config.provider {
            ProviderKind::Resend => {
                let key = config.resend_api_key.as_deref().context("RESEND_API_KEY is not set")?;
                Arc::new(ResendProvider::new(&config.resend_base_url, key)?)
            }
            ProviderKind::Sandbox => {
                let (tx, rx) = mpsc::unbounded_channel();
                let arrived = Arc::new(Notify::new());
                feed = Some(Arc::new(SimulatedFeed::new(events.clone(), rx, arrived.clone())));
                Arc::new(SimulatedProvider::new(tx, arrived))
            }
        };
        let wake = Arc::new(Notify::new());
        let render_processes = RenderProcesses::new(RenderProcessSettings {
            exe: match &config.render_bin {
                Some(bin) => bin.clone(),
                None => std::env::current_exe().context("cannot find this binary to start render workers")?,
            },
            memory_mb: config.render_memory_mb,
            timeout: Duration::from_millis(config.render_timeout_ms),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
        });
        let renderer = Arc::new(Renderer::new(
            UnsubscribeLinks::new(&secret, &config.public_url),
            config.max_html_bytes,
            // A claim renders about two requests' worth at most.
            config.max_batch_bytes.saturating_mul(2),
            render_processes,
        ));
        let outbox = Outbox::new(
            store.clone(),
            provider.clone(),
            OutboxSettings {
                send_rate: config.send_rate,
                lease_ms: i64::try_from(config.lease_secs.saturating_mul(1000)).unwrap_or(60_000),
                max_attempts: config.max_attempts,
                retry_base_ms: config.retry_base_ms,
                concurrency: config.worker_concurrency,
                campaign_share: config.campaign_share,
                max_batch_bytes: config.max_batch_bytes,
                // Claim no more than can go out in about half a second, so a pause
                // or a transactional email never waits behind a deep local backlog.
                claim_batches: match config.send_rate {
                    0 => 4,
                    rate => (rate as usize / (2 * config.worker_concurrency.max(1))).clamp(1, 4),
                },
            },
            wake.clone(),
            renderer.clone(),
        );
        // The API and the domain re-check call the provider too: through the same pacer.
        let provider: Arc<dyn DeliveryProvider> = Arc::new(PacedProvider::new(provider, outbox.pacer(), store.clone()));
        Ok(Self { store, provider, outbox, wake, events, renderer, feed, activity: Arc::default() })
    }

    /// Runs the worker's workers (see [`workers`]) until `shutdown` resolves,
    /// then lets in-flight batches finish, for at most 30 seconds.
    pub async fn run_worker(self, config: &Config, shutdown: impl Future<Output = ()>) {
        let runner = Runner::spawn(workers(&self, config, Role::Worker), self.activity.clone());
        shutdown.await;
        runner.shut_down().await;
        self.store.close().await;
    }
}

/// Which command's process the workers are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `mailroom serve`: HTTP, and the sending work unless `sending` is false.
    Serve { sending: bool },
    /// `mailroom worker`: the sending work alone.
    Worker,
}

/// The background workers a process runs, in the order they stop: those that
/// finish their work in hand first (the outbox within 30 s, then the tenant
/// webhooks and the automations within 15 s each), then the periodic ones,
/// cut short; the sandbox's event feed keeps storing what the last batches
/// produce until then.
pub fn workers(core: &Core, config: &Config, role: Role) -> Vec<Arc<dyn Worker>> {
    let mut list: Vec<Arc<dyn Worker>> = Vec::new();
    if matches!(role, Role::Worker | Role::Serve { sending: true }) {
        list.push(Arc::new(core.outbox.clone()));
        // Webhooks to tenants run beside the outbox, never in its way.
        match Notifier::new(core.store.clone(), NotifierSettings::from_config(config)) {
            Ok(notifier) => list.push(Arc::new(notifier)),
            Err(e) => tracing::error!(error = ?e, "webhooks to customers are not delivered"),
        }
        // Automations act on delivery events after they are stored, beside the outbox.
        match Engine::new(core.store.clone(), core.wake.clone(), config) {
            Ok(engine) => {
                // Agent runs in a lane of their own: no rule waits behind a model.
                list.push(Arc::new(engine.agent_runs()));
                list.push(Arc::new(engine));
                list.push(Arc::new(FinishedCampaigns::new(core.store.clone())));
            }
            Err(e) => tracing::error!(error = ?e, "automations do not run"),
        }
        list.push(Arc::new(DomainRecheck::new(
            core.store.clone(),
            core.provider.clone(),
            Duration::from_secs(config.domain_poll_secs),
        )));
        list.push(Arc::new(ReputationSweep::new(
            core.store.clone(),
            Duration::from_secs(config.reputation_sweep_secs),
        )));
        list.push(Arc::new(PendingExpiry::new(core.store.clone(), config.pending_days)));
    }
    if let Some(feed) = &core.feed {
        list.push(feed.clone());
    }
    if matches!(role, Role::Serve { .. }) {
        list.push(Arc::new(QueueGauges::new(core.store.clone())));
    }
    list
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    core: Core,
    config: Config,
    run_worker: bool,
    /// The workers `serve` runs with its worker on, built once (their HTTP
    /// clients are not cheap) and shared by the runner and by a test's steps.
    sending_workers: std::sync::OnceLock<Vec<Arc<dyn Worker>>>,
}

impl Application {
    /// Binds, connects, migrates. `run_worker` = false serves HTTP only.
    ///
    /// The address is bound first: a port already in use is refused before a
    /// new database and admin key are created. An unset `PUBLIC_URL` follows
    /// the bound address (port 0 included).
    pub async fn build(mut config: Config, run_worker: bool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.bind).await.map_err(|e| bind_error(config.bind, e))?;
        config.follow_bound_address(listener.local_addr().context("Failed to read the bound address")?);
        if let Some(warning) = config.public_url_warning() {
            tracing::warn!("{warning}");
        }
        let core = Core::build(&config).await?;
        let admin_key_hash = admin_key_hash(&core.store, &config).await?;
        let verifier = WebhookVerifier::new(&config.webhook_secrets)?;
        if config.provider == ProviderKind::Resend && config.webhook_secrets.is_empty() {
            tracing::warn!(
                "WEBHOOK_SECRET is not set: delivery events from Resend will be refused, so bounces and complaints \
                 will not suppress anyone; copy the webhook's signing secret from Resend's dashboard"
            );
        }
        if config.provider == ProviderKind::Resend && !config.public_url.starts_with("https://") {
            tracing::warn!(
                public_url = %config.public_url,
                "PUBLIC_URL is not https: one-click unsubscribe links in campaign mail point there, and Gmail and \
                 Yahoo expect https; set PUBLIC_URL to this service's public https address"
            );
        }
        let dns = crate::sending_domains::dns::DnsChecker::new(config.dns_resolver)?;
        let state = AppState {
            store: core.store.clone(),
            provider: core.provider.clone(),
            verifier: Arc::new(verifier),
            admin_key_hash: admin_key_hash.into(),
            config: Arc::new(config.clone()),
            events: core.events.clone(),
            renderer: core.renderer.clone(),
            wake: core.wake.clone(),
            auth_throttle: crate::auth::throttle::AuthThrottle::default(),
            dns,
        };
        let router = router(state);
        Ok(Self { listener, router, core, config, run_worker, sending_workers: std::sync::OnceLock::new() })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.bind)
    }

    /// The configuration in use, `public_url` as it follows the bound address.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> Store {
        self.core.store.clone()
    }

    pub fn outbox(&self) -> Outbox {
        self.core.outbox.clone()
    }

    /// Every worker `serve` runs, with its worker on, for a test to step
    /// ([`Workers::settle`]) whether or not this app runs them itself.
    pub fn workers(&self) -> Workers {
        Workers::new(self.sending_workers().to_vec(), self.core.activity.clone(), self.core.store.clone())
    }

    fn sending_workers(&self) -> &[Arc<dyn Worker>] {
        self.sending_workers.get_or_init(|| workers(&self.core, &self.config, Role::Serve { sending: true }))
    }

    /// Serves until `shutdown` resolves, then drains: HTTP stops accepting, the
    /// worker finishes the batches in hand.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let sending = self.run_worker;
        let list = match sending {
            true => self.sending_workers().to_vec(),
            false => workers(&self.core, &self.config, Role::Serve { sending }),
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(serve(self.listener, self.router, stop_rx));
        let core = self.core;
        let runner = Runner::spawn(list, core.activity.clone());
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        runner.shut_down().await;
        if sending {
            core.store.close().await;
        }
        server.await.context("HTTP server task failed")?;
        Ok(())
    }
}

/// How long a client may take to send its request headers: a slow client
/// (slowloris) cannot hold connections open by trickling them.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send its request body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves HTTP until `stop` turns true, then lets requests in flight finish
/// (for at most 30 seconds). Our own accept loop rather than `axum::serve`,
/// which has no header read timeout.
async fn serve(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, say: wait a little rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // The peer, as `axum::serve` gives it: sign-in throttling is per client address.
                let service = router.clone().map_request(move |req: axum::http::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    req
                });
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), hyper_util::service::TowerToHyperService::new(service))
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut stopped => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after 30 s; closing their connections");
    }
}

/// Why the server cannot listen on `bind`, in words an operator acts on.
fn bind_error(bind: std::net::SocketAddr, e: std::io::Error) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "{bind} is already in use (another mailroom, or another program, listens there): stop it, or choose \
             another address with --bind or MAILROOM_BIND"
        ),
        std::io::ErrorKind::AddrNotAvailable => {
            anyhow::anyhow!("{bind} is not an address of this machine: choose another with --bind or MAILROOM_BIND")
        }
        std::io::ErrorKind::PermissionDenied => {
            anyhow::anyhow!("not allowed to listen on {bind} (ports below 1024 need privileges): choose another port")
        }
        _ => anyhow::Error::new(e).context(format!("Failed to listen on {bind}")),
    }
}

/// The admin key's hash: from `MAILROOM_ADMIN_KEY`, or generated at first start,
/// printed once, and stored as a hash only.
async fn admin_key_hash(store: &Store, config: &Config) -> anyhow::Result<String> {
    if let Some(key) = &config.admin_key {
        return Ok(hash_key(key));
    }
    if let Some(hash) = store.setting("admin_key_hash").await? {
        return Ok(hash);
    }
    let key = generate_key("mra_");
    let hash = hash_key(&key);
    if store.insert_setting_if_absent("admin_key_hash", &hash).await? {
        println!("\n  mailroom admin key (shown once, store it now): {key}\n");
        return Ok(hash);
    }
    // Another process generated one first.
    store.setting("admin_key_hash").await?.context("admin key hash vanished")
}

/// The secret that signs unsubscribe links: `MAILROOM_SECRET`, else the one
/// generated at first start and kept in the database.
async fn server_secret(store: &Store, config: &Config) -> anyhow::Result<String> {
    if let Some(secret) = &config.secret {
        return Ok(secret.clone());
    }
    store.insert_setting_if_absent("server_secret", &generate_key("mrs_")).await?;
    store.setting("server_secret").await?.context("the server secret vanished")
}

pub fn router(state: AppState) -> Router {
    let (api, openapi) = crate::api::router().split_for_parts();
    let openapi = crate::api::document(openapi);
    api.merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi))
        // The dashboard: merged after the split, so its routes stay out of the OpenAPI document.
        .merge(crate::ui::router(state.clone()))
        .fallback(crate::api::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_READ_TIMEOUT))
        .layer(axum::middleware::map_response(crate::error::json_error_envelope))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
