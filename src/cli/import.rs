//! `mailroom import FILE --customer ID`: streams a CSV or NDJSON file to a
//! running mailroom's import route, shows the rows the server has written as
//! they commit (a bar on a terminal, a line every few seconds otherwise), and
//! prints its report.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

#[derive(Clone, Debug, clap::Args)]
pub struct ImportArgs {
    /// The file: `.csv`, or `.ndjson` / `.jsonl` (one JSON contact per line).
    pub file: PathBuf,
    /// The customer (tenant) id to import into.
    #[arg(long)]
    pub customer: String,
    /// The mailroom server [default: http:// + MAILROOM_BIND, else http://127.0.0.1:8000].
    #[arg(long, env = "MAILROOM_URL")]
    pub url: Option<String>,
    /// The customer's API key (or the admin key).
    #[arg(long, env = "MAILROOM_API_KEY", hide_env_values = true)]
    pub key: String,
    /// What to do with addresses the customer already has: `skip` or `update`.
    #[arg(long, default_value = "skip", value_parser = ["skip", "update"])]
    pub on_conflict: String,
}

impl ImportArgs {
    /// The server to talk to: `--url`, else where a server started with the
    /// same environment listens (`MAILROOM_BIND`).
    pub fn base_url(&self) -> String {
        let url = self.url.clone().unwrap_or_else(|| {
            let bind = std::env::var("MAILROOM_BIND").ok().and_then(|b| b.trim().parse().ok());
            crate::config::local_url(bind.unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 8000))))
        });
        url.trim_end_matches('/').to_owned()
    }
}

/// The media type for a file, from its extension.
pub fn content_type(path: &Path) -> anyhow::Result<&'static str> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => Ok("text/csv"),
        Some("ndjson" | "jsonl") => Ok("application/x-ndjson"),
        _ => bail!("{}: the file must end in .csv, .ndjson or .jsonl", path.display()),
    }
}

/// How often progress is printed when stderr is not a terminal (a log, CI).
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// Runs the command: check the key, upload with a progress bar of the rows
/// the server has written, then print the report. Fails (a non-zero exit)
/// when rows were rejected.
pub async fn run(args: &ImportArgs) -> anyhow::Result<()> {
    let content_type = content_type(&args.file)?;
    let rows = count_rows(&args.file, content_type).await?;
    let client = reqwest::Client::new();
    check_access(&client, args).await?;
    let progress = Progress::new(rows);
    let report = upload(&client, args, &progress).await;
    progress.finish();
    let report = report?;
    let n = |k: &str| report[k].as_u64().unwrap_or(0);
    println!(
        "created {}, updated {}, skipped {}, rejected {}",
        n("created"),
        n("updated"),
        n("skipped"),
        n("rejected")
    );
    for e in report["errors"].as_array().into_iter().flatten() {
        println!("  line {}: {}", e["line"], e["reason"].as_str().unwrap_or_default());
    }
    if n("rejected") > report["errors"].as_array().map_or(0, |a| a.len() as u64) {
        println!("  (only the first rejected rows are listed)");
    }
    if let Some(id) = report["id"].as_str() {
        println!("report: GET /customers/{}/imports/{id}", args.customer);
    }
    if n("rejected") > 0 {
        bail!("{} rows were rejected (listed above); the others were imported", n("rejected"));
    }
    Ok(())
}

/// Rows in the file, for the bar's length: its lines, less a CSV's header.
async fn count_rows(path: &Path, content_type: &str) -> anyhow::Result<u64> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await.with_context(|| format!("cannot read {}", path.display()))?;
    let (mut lines, mut last, mut buf) = (0u64, b'\n', vec![0u8; 256 * 1024]);
    loop {
        let n = file.read(&mut buf).await.with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    if last != b'\n' {
        lines += 1;
    }
    Ok(if content_type == "text/csv" { lines.saturating_sub(1) } else { lines })
}

/// Asks the server, before uploading, whether the key reaches the customer:
/// a refused key is said as such (a server refuses an upload without reading
/// it, which the client would see as a broken pipe).
async fn check_access(client: &reqwest::Client, args: &ImportArgs) -> anyhow::Result<()> {
    let base = args.base_url();
    let res = client
        .get(format!("{base}/customers/{}/imports?limit=1", args.customer))
        .bearer_auth(&args.key)
        .send()
        .await
        .map_err(|e| reach_error(&base, &e))?;
    refusal(res.status(), res.json().await.unwrap_or(Value::Null), args)
}

/// The error a refused request means, or `Ok` for a 2xx.
fn refusal(status: reqwest::StatusCode, body: Value, args: &ImportArgs) -> anyhow::Result<()> {
    let message = body["error"]["message"].as_str().unwrap_or("").to_owned();
    match status.as_u16() {
        200..=299 => Ok(()),
        401 => bail!("the server refused the API key (401): check --key or MAILROOM_API_KEY"),
        403 => bail!("this key may not import contacts (403): {message}"),
        404 => bail!("customer {} not found, or the key does not reach it (404)", args.customer),
        429 => bail!("the server refused the key for now after too many failed tries (429): {message}"),
        _ => bail!("the server answered {status}: {message}"),
    }
}

fn reach_error(base: &str, e: &reqwest::Error) -> anyhow::Error {
    if e.is_connect() {
        anyhow::anyhow!(
            "could not reach mailroom at {base} (is it running? set --url or MAILROOM_URL): {}",
            root_cause(e)
        )
    } else {
        anyhow::anyhow!("the request to {base} failed: {}", root_cause(e))
    }
}

/// Rows the server has written, shown as a bar on a terminal and as a line
/// every few seconds otherwise.
pub struct Progress {
    /// None when stderr is not a terminal.
    bar: Option<ProgressBar>,
    /// False: nothing is shown (the bench's uploads).
    shown: bool,
    rows: u64,
    started: Instant,
    last_line: std::sync::Mutex<Option<Instant>>,
}

impl Progress {
    fn new(rows: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(rows);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:30}] {pos}/{len} rows {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message("uploading");
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self { bar, shown: true, rows, started: Instant::now(), last_line: std::sync::Mutex::new(None) }
    }

    /// Progress that shows nothing.
    pub fn hidden() -> Self {
        Self { bar: None, shown: false, rows: 0, started: Instant::now(), last_line: std::sync::Mutex::new(None) }
    }

    /// The server's running totals, after a chunk of rows committed.
    fn update(&self, totals: &Value) {
        let n = |k: &str| totals[k].as_u64().unwrap_or(0);
        let done = n("created") + n("updated") + n("skipped") + n("rejected");
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = format!("{:.0} rows/s", done as f64 / secs);
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(rate);
            }
            None if !self.shown => {}
            None => {
                let mut last = self.last_line.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if last.map_or(true, |t| t.elapsed() >= PLAIN_PROGRESS_EVERY) {
                    *last = Some(Instant::now());
                    eprintln!(
                        "{done} of about {} rows done (created {}, updated {}, skipped {}), {rate}",
                        self.rows,
                        n("created"),
                        n("updated"),
                        n("skipped")
                    );
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Streams the file to `POST /customers/{id}/contacts/import`, asking for
/// progress lines (`Accept: application/x-ndjson`) and showing each on
/// `progress`; returns the server's report.
pub async fn upload(client: &reqwest::Client, args: &ImportArgs, progress: &Progress) -> anyhow::Result<Value> {
    let content_type = content_type(&args.file)?;
    let file =
        tokio::fs::File::open(&args.file).await.with_context(|| format!("cannot read {}", args.file.display()))?;
    let base = args.base_url();
    let url = format!("{base}/customers/{}/contacts/import?on_conflict={}", args.customer, args.on_conflict);
    let res = client
        .post(&url)
        .bearer_auth(&args.key)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header(reqwest::header::ACCEPT, "application/x-ndjson")
        .body(reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)))
        .send()
        .await
        .map_err(|e| reach_error(&base, &e))?;
    let status = res.status();
    let streamed = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-ndjson"));
    if !streamed {
        let body: Value = res.json().await.unwrap_or(Value::Null);
        refusal(status, body.clone(), args)?;
        return Ok(body);
    }
    let mut lines = res.bytes_stream();
    let mut pending = Vec::new();
    while let Some(chunk) = lines.try_next().await.map_err(|e| reach_error(&base, &e))? {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let Ok(value) = serde_json::from_slice::<Value>(&line) else { continue };
            if let Some(totals) = value.get("progress") {
                progress.update(totals);
            } else if let Some(report) = value.get("report") {
                return Ok(report.clone());
            } else if let Some(error) = value.get("error") {
                bail!("the import failed: {}", error["message"].as_str().unwrap_or("no reason given"));
            }
        }
    }
    bail!(
        "the server stopped answering before the import ended: see GET /customers/{}/imports for what was written",
        args.customer
    )
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_type_follows_the_extension() {
        assert_eq!(content_type(Path::new("a.CSV")).unwrap(), "text/csv");
        assert_eq!(content_type(Path::new("a.jsonl")).unwrap(), "application/x-ndjson");
        assert_eq!(content_type(Path::new("a.ndjson")).unwrap(), "application/x-ndjson");
        assert!(content_type(Path::new("a.txt")).is_err());
    }
}
