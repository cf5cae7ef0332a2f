//! Bulk import of contacts from a CSV or NDJSON body of any size, read as it
//! streams in: rows are checked as they arrive, bad ones reported by line, good
//! ones written in chunks of [`CHUNK_ROWS`] (one transaction each) by a writer
//! task that runs beside the parser. Memory stays bounded by a few chunks
//! whatever the body's size.

pub mod csv;
mod ndjson;
mod rows;

use std::fmt::Display;

use axum::body::Bytes;
use futures::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::domain::TenantId;
use crate::store::{ImportOutcome, ImportRow, OnConflict, Store};

pub use rows::{build_row, unneutralise, RowInput};

/// Rows written per transaction.
pub const CHUNK_ROWS: usize = 2_000;
/// Rejected rows listed in a report (all are counted).
pub const MAX_ERRORS: usize = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

/// What an import did.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Report {
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

#[derive(Debug, Serialize, ToSchema)]
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
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    import_stream_observed(store, tenant, format, on_conflict, body, |_| {}).await
}

/// As [`import_stream`], calling `progress` with the running totals each
/// time a chunk commits (the dashboard streams these to the browser).
pub async fn import_stream_observed<S, E>(
    store: Store,
    tenant: TenantId,
    format: Format,
    on_conflict: OnConflict,
    mut body: S,
    progress: impl Fn(Progress) + Send + 'static,
) -> Result<Report, ImportError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let mut parser: Box<dyn Parser> = match format {
        Format::Csv => Box::new(rows::CsvParser::default()),
        Format::Ndjson => Box::new(ndjson::NdjsonParser::default()),
    };
    let mut sink = Sink { rows: Vec::with_capacity(CHUNK_ROWS), report: Report::default() };
    // The writer runs beside the parser: one chunk is written while the next is read.
    let (tx, mut rx) = mpsc::channel::<Vec<ImportRow>>(1);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut report = Report::default();
            while let Some(rows) = rx.recv().await {
                report.add(store.import_rows(&tenant, rows, on_conflict).await?);
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
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ImportError::Body(e.to_string()))?;
            parser.push(&chunk, &mut sink)?;
            if sink.rows.len() >= CHUNK_ROWS {
                let rows = std::mem::replace(&mut sink.rows, Vec::with_capacity(CHUNK_ROWS));
                if tx.send(rows).await.is_err() {
                    // The writer stopped: its error is the answer.
                    return Ok(());
                }
            }
        }
        parser.finish(&mut sink)?;
        let rows = std::mem::take(&mut sink.rows);
        if !rows.is_empty() {
            let _ = tx.send(rows).await;
        }
        Ok::<_, ImportError>(())
    };
    let read = read.await;
    drop(tx);
    let written = writer.await.map_err(|e| ImportError::Db(sqlx::Error::Protocol(format!("import writer: {e}"))))?;
    read?;
    let written = written?;
    let mut report = sink.report;
    let created = written.created;
    report.created += written.created;
    report.updated += written.updated;
    report.skipped += written.skipped;
    report.rejected += written.rejected;
    for e in written.errors {
        if report.errors.len() < MAX_ERRORS {
            report.errors.push(e);
        }
    }
    report.errors.sort_by_key(|e| e.line);
    store.imported(created).await?;
    Ok(report)
}
