//! Bulk import of contacts from a CSV or NDJSON body of any size, read as it
//! streams in: rows are checked as they arrive, bad ones reported by line, good
//! ones written in chunks of [`CHUNK_ROWS`] (one transaction each) by a writer
//! task that runs beside the parser. Memory stays bounded by a few chunks
//! whatever the body's size.

pub mod csv;
mod ndjson;
mod rows;
mod topics;

use std::fmt::Display;

use axum::body::Bytes;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::domain::{new_id, TenantId};
use crate::store::{ImportEnding, ImportOutcome, ImportRow, OnConflict, Store};

pub use rows::{build_row, unneutralise, RowInput};
pub use topics::TopicIndex;

/// Rows written per transaction.
pub const CHUNK_ROWS: usize = 2_000;
/// Rejected rows listed in a report (all are counted).
pub const MAX_ERRORS: usize = 1_000;

/// Rejected rows kept in an import's stored report (all are counted).
pub const STORED_ERRORS: usize = 100;
/// Longest reason kept in a stored report, in characters.
pub const STORED_REASON_CHARS: usize = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    /// As a stored report names it: `csv` or `ndjson`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }
}

/// What an import did.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Report {
    /// The import's id: its stored report is `GET /customers/{id}/imports/{import_id}`.
    pub id: String,
    /// Contacts created.
    pub created: u64,
    /// Contacts updated (`on_conflict=update`), including repeats of an address within the body.
    pub updated: u64,
    /// Rows whose address the customer already had, or that repeat an earlier row (`on_conflict=skip`).
    pub skipped: u64,
    /// Rows refused; the first 1,000 are listed in `errors`.
    pub rejected: u64,
    pub errors: Vec<RowError>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RowError {
    /// 1-based line in the body (the CSV header is line 1); for a JSON body, the position in `contacts`.
    pub line: u64,
    pub reason: String,
}

impl Report {
    pub fn reject(&mut self, line: u64, reason: String) {
        self.rejected += 1;
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(RowError { line, reason });
        }
    }

    /// Adds the counts and rejected rows of another part of the same import.
    fn merge(&mut self, other: &Report) {
        self.created += other.created;
        self.updated += other.updated;
        self.skipped += other.skipped;
        self.rejected += other.rejected;
        for e in &other.errors {
            if self.errors.len() < MAX_ERRORS {
                self.errors.push(RowError { line: e.line, reason: e.reason.clone() });
            }
        }
    }

    /// The first [`STORED_ERRORS`] rejected rows as kept in the stored
    /// report (a JSON list), each reason cut to [`STORED_REASON_CHARS`].
    fn stored_errors(&self) -> String {
        let kept: Vec<RowError> = self
            .errors
            .iter()
            .take(STORED_ERRORS)
            .map(|e| RowError { line: e.line, reason: e.reason.chars().take(STORED_REASON_CHARS).collect() })
            .collect();
        serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into())
    }

    pub fn add(&mut self, o: ImportOutcome) {
        self.created += o.created;
        self.updated += o.updated;
        self.skipped += o.skipped;
        for (line, reason) in o.rejected {
            self.reject(line, reason);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The body as a whole cannot be imported (e.g. a CSV header without `email`).
    #[error("{0}")]
    Invalid(String),
    /// Reading the body failed (the client went away, or stalled past the timeout).
    #[error("reading the request body failed: {0}")]
    Body(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Checks rows as they arrive; calls back with good rows and rejections.
trait Parser: Send {
    fn push(&mut self, chunk: &[u8], sink: &mut Sink) -> Result<(), ImportError>;
    fn finish(&mut self, sink: &mut Sink) -> Result<(), ImportError>;
}

/// Where a parser puts what it read.
pub struct Sink {
    rows: Vec<ImportRow>,
    report: Report,
}

impl Sink {
    fn row(&mut self, line: u64, row: Result<ImportRow, String>) {
        match row {
            Ok(r) => self.rows.push(r),
            Err(reason) => self.report.reject(line, reason),
        }
    }
}

/// Rows written so far by an import, told after each chunk commits.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Progress {
    pub created: u64,
    pub updated: u64,
    pub skipped: u64,
    /// Rows the database refused (rows refused while parsing are counted in the report).
    pub rejected: u64,
}

/// Imports a body into the tenant's contacts. Chunks commit as they are read:
/// an import cut short (the client went away) keeps the chunks before the cut.
pub async fn import_stream<S, E>(
    store: Store,
    tenant: TenantId,
    format: Format,
    on_conflict: OnConflict,
    body: S,
) -> Result<Report, ImportError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
    E: Display + Send + 'static,
{
    import_stream_observed(store, tenant, format, on_conflict, body, |_| {}).await
}

/// As [`import_stream`], calling `progress` with the running totals each
/// time a chunk commits (the dashboard streams these to the browser).
///
/// Every import is recorded under a fresh id (`Report::id`) with its report,
/// however it ends: completed, its body ended early (the rows read in full
/// before the cut are written and counted), refused whole, or failed. It runs
/// as a task of its own, so that a client going away, which drops the
/// request, cannot stop it between a chunk and its report.
pub async fn import_stream_observed<S, E>(
    store: Store,
    tenant: TenantId,
    format: Format,
    on_conflict: OnConflict,
    body: S,
    progress: impl Fn(Progress) + Send + 'static,
) -> Result<Report, ImportError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
    E: Display + Send + 'static,
{
    let topics = store.topics(&tenant, "", crate::store::TOPICS_MAX as i64).await?;
    let topics = TopicIndex::new(topics.into_iter().map(|t| (t.id, t.name)));
    let id = new_id();
    store.start_import(&tenant, &id, format.as_str(), on_conflict.as_str()).await?;
    let import = Import { store, tenant, id, on_conflict, topics };
    tokio::spawn(import.run(format, body, progress))
        .await
        .map_err(|e| ImportError::Db(sqlx::Error::Protocol(format!("import task: {e}"))))?
}

/// One import under way, and where its report is kept.
struct Import {
    store: Store,
    tenant: TenantId,
    id: String,
    on_conflict: OnConflict,
    /// The tenant's topics, as `topic:` columns name them.
    topics: TopicIndex,
}

impl Import {
    async fn run<S, E>(
        self,
        format: Format,
        mut body: S,
        progress: impl Fn(Progress) + Send + 'static,
    ) -> Result<Report, ImportError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
        E: Display + Send + 'static,
    {
        let topics = self.topics.clone();
        let mut parser: Box<dyn Parser> = match format {
            Format::Csv => Box::new(rows::CsvParser::new(topics)),
            Format::Ndjson => Box::new(ndjson::NdjsonParser::new(topics)),
        };
        let mut sink = Sink { rows: Vec::with_capacity(CHUNK_ROWS), report: Report::default() };
        // The writer runs beside the parser: one chunk is written while the next is read.
        let (tx, mut rx) = mpsc::channel::<Vec<ImportRow>>(1);
        let writer = {
            let (store, tenant, id, on_conflict) =
                (self.store.clone(), self.tenant.clone(), self.id.clone(), self.on_conflict);
            tokio::spawn(async move {
                let mut report = Report::default();
                while let Some(rows) = rx.recv().await {
                    report.add(store.import_chunk(&tenant, Some(&id), rows, on_conflict).await?);
                    progress(Progress {
                        created: report.created,
                        updated: report.updated,
                        skipped: report.skipped,
                        rejected: report.rejected,
                    });
                }
                Ok::<_, sqlx::Error>(report)
            })
        };
        let read = async {
            let mut ended = Ok(());
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        ended = Err(ImportError::Body(e.to_string()));
                        break;
                    }
                };
                parser.push(&chunk, &mut sink)?;
                if sink.rows.len() >= CHUNK_ROWS {
                    let rows = std::mem::replace(&mut sink.rows, Vec::with_capacity(CHUNK_ROWS));
                    if tx.send(rows).await.is_err() {
                        // The writer stopped: its error is the answer.
                        return Ok(());
                    }
                }
            }
            if ended.is_ok() {
                parser.finish(&mut sink)?;
            }
            // Also when the body was cut: these rows were read to their line
            // end (a parser holds back a row until then), and the report counts them.
            let rows = std::mem::take(&mut sink.rows);
            if !rows.is_empty() {
                let _ = tx.send(rows).await;
            }
            ended
        };
        let read = read.await;
        drop(tx);
        let written = match writer.await {
            Ok(written) => written.map_err(ImportError::Db),
            Err(e) => Err(ImportError::Db(sqlx::Error::Protocol(format!("import writer: {e}")))),
        };
        let mut report = sink.report;
        report.id = self.id.clone();
        let parse_rejected = report.rejected;
        if let Ok(written) = &written {
            report.merge(written);
        }
        report.errors.sort_by_key(|e| e.line);
        let outcome = written.and(read);
        let (status, reason) = match &outcome {
            Ok(()) => ("completed", None),
            Err(ImportError::Body(e)) => ("ended_early", Some(format!("the request body ended early: {e}"))),
            Err(ImportError::Invalid(e)) => ("refused", Some(e.clone())),
            // The cause is logged, never shown.
            Err(ImportError::Db(_)) => ("failed", Some("the import failed on the server's side".to_owned())),
        };
        let errors = report.stored_errors();
        let ending = ImportEnding { status, end_reason: reason.as_deref(), parse_rejected, errors: &errors };
        let finished = self.store.finish_import(&self.tenant, &self.id, &ending).await;
        if let Err(e) = self.store.imported(report.created).await {
            // Only the planner's statistics: the import stands.
            tracing::warn!(error = %e, "statistics not refreshed after an import");
        }
        match outcome {
            Ok(()) => {
                finished?;
                Ok(report)
            }
            Err(e) => {
                if let Err(db) = finished {
                    tracing::error!(error = %db, import = %self.id, "the report of an import that ended early was not stored");
                }
                Err(match e {
                    ImportError::Body(e) => ImportError::Body(format!(
                        "{e}; the rows read before were imported (import {}: see its report)",
                        self.id
                    )),
                    e => e,
                })
            }
        }
    }
}
