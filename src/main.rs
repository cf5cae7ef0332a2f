use anyhow::Context;
use clap::{Parser, Subcommand};

use mailroom::app::{Application, Core};
use mailroom::config::Config;

#[derive(Parser)]
#[command(name = "mailroom", version, about = "Self-hosted, multi-tenant email service over one Resend account")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the sending worker (the default).
    #[command(after_help = mailroom::config::settings::help())]
    Serve(ServeArgs),
    /// Run only the sending worker (scale out against one PostgreSQL).
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Import contacts from a CSV or NDJSON file into a running mailroom.
    Import(mailroom::cli::import::ImportArgs),
    /// Run the Resend-compatible mock server for local development and tests
    /// (built with `--features tools`).
    #[cfg(feature = "tools")]
    MockResend(mailroom::mock::MockConfig),
    /// Run a mock language model (OpenAI chat completions and Anthropic
    /// Messages, tool calling) that picks tools by simple rules (built with
    /// `--features tools`).
    #[cfg(feature = "tools")]
    MockLlm(mailroom::mock::llm::MockLlmConfig),
    /// Receive webhooks (Standard Webhooks) and print them, verifying their
    /// signatures with `--secret` (built with `--features tools`).
    #[cfg(feature = "tools")]
    WebhookSink(mailroom::mock::sink::SinkConfig),
    /// Measure mailroom: fanout | webhooks | rate | audience | import | idle | all
    /// (built with `--features tools`).
    #[cfg(feature = "tools")]
    Bench(mailroom::bench::BenchArgs),
    /// Render tenants' templates for a mailroom server, from stdin to stdout
    /// (the server starts these itself).
    #[command(name = "render-worker", hide = true)]
    RenderWorker {
        /// The address space this process may use.
        #[arg(long, default_value_t = 256)]
        memory_mb: u64,
    },
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// Listen address, like 127.0.0.1:8000 (beats MAILROOM_BIND).
    #[arg(long, value_name = "ADDRESS")]
    bind: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A render worker starts no runtime and no threads: it limits its own
    // memory first thing, and serves one job at a time.
    if let Some(Command::RenderWorker { memory_mb }) = cli.command {
        return mailroom::render::isolation::serve_stdio(memory_mb);
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        #[cfg(feature = "tools")]
        Command::MockResend(config) => {
            mailroom::telemetry::init(false);
            let mock = mailroom::mock::MockResend::start(config).await?;
            println!("mock Resend listening on {}", mock.url());
            shutdown_signal().await;
            Ok(())
        }
        Command::Import(args) => mailroom::cli::import::run(&args).await,
        #[cfg(feature = "tools")]
        Command::MockLlm(config) => {
            mailroom::telemetry::init(false);
            let mock = mailroom::mock::llm::MockLlm::start(config).await?;
            println!("mock LLM listening on {} (OpenAI: /v1/chat/completions, Anthropic: /v1/messages)", mock.url());
            shutdown_signal().await;
            Ok(())
        }
        #[cfg(feature = "tools")]
        Command::WebhookSink(config) => mailroom::mock::sink::run(config).await,
        #[cfg(feature = "tools")]
        Command::Bench(args) => {
            mailroom::telemetry::init(false);
            mailroom::bench::run(&args).await.map(|_| ())
        }
        command => {
            let overrides = match &command {
                Command::Serve(ServeArgs { bind: Some(bind) }) => vec![("MAILROOM_BIND", bind.clone())],
                _ => Vec::new(),
            };
            let config = Config::from_env_with(&overrides)?;
            mailroom::telemetry::init(config.debug);
            match command {
                Command::Migrate => {
                    let store = mailroom::store::Store::connect(&config.database_url, 2).await?;
                    store.migrate().await?;
                    println!("migrations applied");
                    Ok(())
                }
                Command::Worker => {
                    if let Some(warning) = config.public_url_warning() {
                        tracing::warn!("{warning}");
                    }
                    let core = Core::build(&config).await?;
                    tracing::info!(provider = core.provider.name(), public_url = %config.public_url, "worker started");
                    core.run_worker(&config, shutdown_signal()).await;
                    Ok(())
                }
                _ => {
                    let app = Application::build(config, true).await?;
                    let (address, public_url) = (app.local_addr(), app.config().public_url.clone());
                    tracing::info!(%address, %public_url, provider = ?app.config().provider, "mailroom listening");
                    println!("mailroom listening on {address}; public URL {public_url} (docs at {public_url}/docs)");
                    println!("dashboard: {public_url}/ui (sign in with the admin key or a customer's key)");
                    app.run_until_stopped(shutdown_signal()).await.context("server failed")
                }
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
