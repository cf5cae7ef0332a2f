//! `mailroom import FILE --customer ID`: streams a CSV or NDJSON file to a
//! running mailroom's import route, with a progress bar, and prints its report.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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
    /// The mailroom server.
    #[arg(long, env = "MAILROOM_URL", default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// The customer's API key (or the admin key).
    #[arg(long, env = "MAILROOM_API_KEY", hide_env_values = true)]
    pub key: String,
    /// What to do with addresses the customer already has: `skip` or `update`.
    #[arg(long, default_value = "skip", value_parser = ["skip", "update"])]
    pub on_conflict: String,
}

/// The media type for a file, from its extension.
pub fn content_type(path: &Path) -> anyhow::Result<&'static str> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => Ok("text/csv"),
        Some("ndjson" | "jsonl") => Ok("application/x-ndjson"),
        _ => bail!("{}: the file must end in .csv, .ndjson or .jsonl", path.display()),
    }
}

/// Runs the command: upload with a progress bar, then print the report.
pub async fn run(args: &ImportArgs) -> anyhow::Result<()> {
    let size = std::fs::metadata(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?.len();
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        ProgressBar::hidden()
    };
    let report = upload(&reqwest::Client::new(), args, &bar).await;
    bar.finish_and_clear();
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
    Ok(())
}

/// Streams the file to `POST /customers/{id}/contacts/import`, counting bytes
/// and lines into `bar`; returns the server's report.
pub async fn upload(client: &reqwest::Client, args: &ImportArgs, bar: &ProgressBar) -> anyhow::Result<Value> {
    let content_type = content_type(&args.file)?;
    let file =
        tokio::fs::File::open(&args.file).await.with_context(|| format!("cannot read {}", args.file.display()))?;
    let lines = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let counted = {
        let (bar, lines) = (bar.clone(), lines.clone());
        tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).inspect_ok(move |chunk| {
            bar.inc(chunk.len() as u64);
            let total = lines.fetch_add(chunk.iter().filter(|b| **b == b'\n').count() as u64, Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!("{total} rows, {:.0} rows/s", total as f64 / secs));
        })
    };
    let base = args.url.trim_end_matches('/');
    let url = format!("{base}/customers/{}/contacts/import?on_conflict={}", args.customer, args.on_conflict);
    let res = client
        .post(&url)
        .bearer_auth(&args.key)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(reqwest::Body::wrap_stream(counted))
        .send()
        .await
        .map_err(|e| {
            if e.is_connect() {
                anyhow::anyhow!(
                    "could not reach mailroom at {base} (is it running? set --url or MAILROOM_URL): {}",
                    root_cause(&e)
                )
            } else {
                anyhow::anyhow!("the upload to {base} failed: {}", root_cause(&e))
            }
        })?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let message = body["error"]["message"].as_str().unwrap_or("").to_owned();
    match status.as_u16() {
        200..=299 => Ok(body),
        401 => bail!("the server refused the API key (401): check --key or MAILROOM_API_KEY"),
        403 => bail!("this key may not import contacts (403): {message}"),
        404 => bail!("customer {} not found, or the key does not reach it (404)", args.customer),
        _ => bail!("the server answered {status}: {message}"),
    }
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
