//! `mailroom bench`: measures mailroom against its targets. Each scenario starts
//! what it needs — the in-repo Resend mock, a mailroom process on a fresh
//! database — runs, and reports figures under stable JSON keys.

mod scenarios;
mod server;

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// fanout | webhooks | rate | tenants | audience | import | idle | stats | all
    #[arg(default_value = "all")]
    pub scenario: String,
    /// Run against this database (PostgreSQL: a fresh database is created beside it); default a temp SQLite file.
    #[arg(long)]
    pub database_url: Option<String>,
    /// fan-out: campaign size.
    #[arg(long, default_value_t = 100_000)]
    pub recipients: usize,
    /// fan-out: send a saved template (rendered by the render workers)
    /// instead of inline content.
    #[arg(long)]
    pub template: bool,
    /// webhooks: events to send.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// webhooks: requests in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// webhooks: any Resend webhook receiver (default: a mailroom the bench starts).
    #[arg(long)]
    pub target: Option<String>,
    /// webhooks: the receiver's `whsec_...` secret (required with --target).
    #[arg(long)]
    pub secret: Option<String>,
    /// webhooks: file of provider email ids (one per line) to put in the events.
    #[arg(long)]
    pub email_ids: Option<PathBuf>,
    /// webhooks: seed a campaign of this many messages first and send the
    /// events to them (so they move messages and counters), instead of to
    /// unknown email ids.
    #[arg(long, default_value_t = 0)]
    pub seed_messages: usize,
    /// webhooks (with --seed-messages): enabled automation rules for the
    /// seeded tenant while the events arrive (issue 10's target: ten).
    #[arg(long, default_value_t = 0)]
    pub rules: usize,
    /// rate: seconds of sending at the provider's limit.
    #[arg(long, default_value_t = 60)]
    pub rate_seconds: u64,
    /// rate: the provider's limit in requests per second.
    #[arg(long, default_value_t = 10)]
    pub rate_limit: u32,
    /// tenants: the big tenant's campaign size.
    #[arg(long, default_value_t = 100_000)]
    pub big_recipients: usize,
    /// tenants: other tenants, each sending a small campaign while the big one sends.
    #[arg(long, default_value_t = 50)]
    pub small_tenants: usize,
    /// tenants: each small campaign's size.
    #[arg(long, default_value_t = 20)]
    pub small_recipients: usize,
    /// audience: contacts to seed.
    #[arg(long, default_value_t = 1_000_000)]
    pub audience: usize,
    /// import: rows of the generated CSV file.
    #[arg(long, default_value_t = 1_000_000)]
    pub import_rows: usize,
    /// stats: messages of the seeded campaign.
    #[arg(long, default_value_t = 1_000_000)]
    pub stats_messages: usize,
    /// stats: delivery events per seeded message.
    #[arg(long, default_value_t = 3)]
    pub stats_events_per_message: usize,
    /// Write the figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The mailroom binary to measure (default: this one).
    #[arg(long)]
    pub mailroom_bin: Option<PathBuf>,
}

/// Figures by key, e.g. `fanout.emails_per_s`.
pub type Figures = BTreeMap<String, f64>;

const SCENARIOS: [&str; 8] = ["fanout", "webhooks", "rate", "tenants", "audience", "import", "idle", "stats"];

/// Runs the chosen scenarios, prints a table, writes JSON if asked; returns the figures.
pub async fn run(args: &BenchArgs) -> anyhow::Result<Figures> {
    let chosen: Vec<&str> = match args.scenario.as_str() {
        "all" => SCENARIOS.to_vec(),
        s if SCENARIOS.contains(&s) => vec![s],
        other => anyhow::bail!("unknown scenario `{other}`: choose one of {} or all", SCENARIOS.join(", ")),
    };
    let mut figures = Figures::new();
    for scenario in chosen {
        eprintln!("== {scenario}");
        let result = match scenario {
            "fanout" => scenarios::fanout(args).await?,
            "webhooks" => scenarios::webhooks(args).await?,
            "rate" => scenarios::rate(args).await?,
            "tenants" => scenarios::tenants(args).await?,
            "audience" => scenarios::audience(args).await?,
            "import" => scenarios::contact_import(args).await?,
            "stats" => scenarios::stats(args).await?,
            _ => scenarios::idle(args).await?,
        };
        for (k, v) in result {
            figures.insert(format!("{scenario}.{k}"), v);
        }
    }
    println!("{}", table(&figures));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&figures)?)?;
        eprintln!("figures written to {}", path.display());
    }
    Ok(figures)
}

fn table(figures: &Figures) -> String {
    let mut out = format!("{:<34} {:>14}\n{}\n", "figure", "value", "-".repeat(49));
    for (k, v) in figures {
        out.push_str(&format!("{k:<34} {v:>14.3}\n"));
    }
    out
}
