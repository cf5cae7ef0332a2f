//! Builds the state and the router; used by `main` and by the tests (which bind port 0).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};

use crate::auth::{generate_key, hash_key};
use crate::config::{Config, ProviderKind};
use crate::delivery_events::{EventWriter, WebhookVerifier};
use crate::outbox::{Outbox, OutboxSettings, PacedProvider};
use crate::provider::resend::ResendProvider;
use crate::provider::simulated::SimulatedProvider;
use crate::provider::DeliveryProvider;
use crate::render::isolation::{RenderProcessSettings, RenderProcesses};
use crate::render::unsubscribe::UnsubscribeLinks;
use crate::render::Renderer;
use crate::state::AppState;
use crate::store::Store;

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
    tasks: Vec<tokio::task::JoinHandle<()>>,
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
        let mut tasks = Vec::new();
        let events = EventWriter::spawn(store.clone());
        let provider: Arc<dyn DeliveryProvider> = match config.provider {
            ProviderKind::Resend => {
                let key = config.resend_api_key.as_deref().context("RESEND_API_KEY is not set")?;
                Arc::new(ResendProvider::new(&config.resend_base_url, key)?)
            }
            ProviderKind::Sandbox => {
                let (tx, rx) = mpsc::unbounded_channel();
                tasks.push(tokio::spawn(crate::delivery_events::run_simulated_feed(events.clone(), rx)));
                Arc::new(SimulatedProvider::new(tx))
            }
        };
        let wake = Arc::new(Notify::new());
        let secret = server_secret(&store, config).await?;
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
        Ok(Self { store, provider, outbox, wake, events, renderer, tasks })
    }

    /// Runs the worker (and the domain re-check) until `shutdown` resolves, then
    /// lets in-flight batches finish, for at most 30 seconds.
    pub async fn run_worker(self, config: &Config, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker = tokio::spawn(self.outbox.clone().run(stop_rx.clone()));
        // Webhooks to tenants run beside the outbox, never in its way.
        let notifier = match crate::tenant_webhooks::Notifier::new(
            self.store.clone(),
            crate::tenant_webhooks::NotifierSettings::from_config(config),
        ) {
            Ok(n) => Some(tokio::spawn(n.run(stop_rx.clone()))),
            Err(e) => {
                tracing::error!(error = ?e, "webhooks to customers are not delivered");
                None
            }
        };
        let sweep = tokio::spawn(crate::reputation::run_sweep(
            self.store.clone(),
            Duration::from_secs(config.reputation_sweep_secs),
            stop_rx.clone(),
        ));
        // Automations act on delivery events after they are stored, beside the outbox.
        let automations = match crate::automations::Engine::new(self.store.clone(), self.wake.clone(), config) {
            Ok(engine) => Some(tokio::spawn(engine.run(stop_rx.clone()))),
            Err(e) => {
                tracing::error!(error = ?e, "automations do not run");
                None
            }
        };
        let poller = tokio::spawn(crate::sending_domains::run_poller(
            self.store.clone(),
            self.provider.clone(),
            Duration::from_secs(config.domain_poll_secs),
            stop_rx,
        ));
        shutdown.await;
        let _ = stop_tx.send(true);
        if tokio::time::timeout(Duration::from_secs(30), worker).await.is_err() {
            tracing::warn!("worker did not stop within 30 s; leased batches will be retried after their lease");
        }
        if let Some(notifier) = notifier {
            if tokio::time::timeout(Duration::from_secs(15), notifier).await.is_err() {
                tracing::warn!("webhook deliveries in flight did not finish; they are retried after their lease");
            }
        }
        if let Some(automations) = automations {
            if tokio::time::timeout(Duration::from_secs(15), automations).await.is_err() {
                tracing::warn!("automation runs in flight did not finish; they are retried after their lease");
            }
        }
        poller.abort();
        sweep.abort();
        for t in self.tasks {
            t.abort();
        }
        self.store.close().await;
    }
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    core: Core,
    config: Config,
    run_worker: bool,
}

impl Application {
    /// Connects, migrates, binds. `run_worker` = false serves HTTP only.
    pub async fn build(config: Config, run_worker: bool) -> anyhow::Result<Self> {
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
        let listener =
            TcpListener::bind(config.bind).await.with_context(|| format!("Failed to bind {}", config.bind))?;
        Ok(Self { listener, router, core, config, run_worker })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn store(&self) -> Store {
        self.core.store.clone()
    }

    pub fn outbox(&self) -> Outbox {
        self.core.outbox.clone()
    }

    /// Serves until `shutdown` resolves, then drains: HTTP stops accepting, the
    /// worker finishes the batches in hand.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(serve(self.listener, self.router, stop_rx.clone()));
        let gauges = tokio::spawn(crate::api::run_queue_gauges(
            self.core.store.clone(),
            Duration::from_secs(QUEUE_GAUGE_SECS),
            stop_rx.clone(),
        ));
        let mut worker_stop = stop_rx;
        let worker_shutdown = async move {
            let _ = worker_stop.wait_for(|s| *s).await;
        };
        let config = self.config;
        let run_worker = self.run_worker;
        let core = self.core;
        let worker = tokio::spawn(async move {
            if run_worker {
                core.run_worker(&config, worker_shutdown).await;
            } else {
                worker_shutdown.await;
            }
        });
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
        let _ = worker.await;
        gauges.abort();
        server.await.context("HTTP server task failed")?;
        Ok(())
    }
}

/// How often the queue-depth gauges of `/metrics` are read from the database.
const QUEUE_GAUGE_SECS: u64 = 5;

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
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, say: wait a little rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let service = router
                    .clone()
                    .map_request(|req: axum::http::Request<hyper::body::Incoming>| req.map(axum::body::Body::new));
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
        .merge(crate::ui::router())
        .fallback(crate::api::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_READ_TIMEOUT))
        .layer(axum::middleware::map_response(crate::error::json_error_envelope))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
