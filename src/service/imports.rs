//! Reports of contact imports (CSV and NDJSON, from the API or the
//! dashboard): each import is recorded under an id with what it wrote and
//! refused and whether its body ended early, so an upload cut short is never
//! a mystery.

use serde::Serialize;
use utoipa::ToSchema;

use super::{page_limit, parse_id, Error, Result};
use crate::domain::{rfc3339, TenantId};
use crate::import::RowError;
use crate::state::AppState;
use crate::store::ImportReportRow;

/// What one import did, as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportReport {
    pub id: String,
    pub customer_id: String,
    /// `csv`, `ndjson` or `json` (a JSON list: all or nothing, so never cut).
    pub format: String,
    /// `skip` or `update`.
    pub on_conflict: String,
    /// `running` (still being read; or the server stopped mid-way, and the
    /// counts are those of the rows committed), `completed`, `ended_early` (the
    /// body was cut: the client went away or stalled), `refused` (the body as
    /// a whole could not be imported, e.g. a CSV header without `email`) or
    /// `failed` (on the server's side).
    pub status: String,
    /// True when the body ended before its end: the rows read in full before
    /// the cut are written and counted, nothing after it.
    pub ended_early: bool,
    /// Why the import did not complete.
    pub end_reason: Option<String>,
    /// Contacts written: `created` + `updated`.
    pub rows_written: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    /// Rows refused; the first 100 are listed in `errors`.
    pub rejected: i64,
    pub errors: Vec<RowError>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

impl From<ImportReportRow> for ImportReport {
    fn from(r: ImportReportRow) -> Self {
        Self {
            ended_early: r.status == "ended_early",
            rows_written: r.created + r.updated,
            errors: serde_json::from_str(&r.errors).unwrap_or_default(),
            id: r.id,
            customer_id: r.tenant_id,
            format: r.format,
            on_conflict: r.on_conflict,
            status: r.status,
            end_reason: r.end_reason,
            created: r.created,
            updated: r.updated,
            skipped: r.skipped,
            rejected: r.rejected,
            started_at: rfc3339(r.started_at),
            finished_at: r.finished_at.map(rfc3339),
        }
    }
}

/// The tenant's imports, newest first; `limit` as `?limit=` (default 100, at most 1000).
pub async fn list(state: &AppState, tenant: &TenantId, limit: Option<&str>) -> Result<Vec<ImportReport>> {
    let limit = page_limit(limit)?;
    Ok(state.store.import_reports(tenant, limit).await?.into_iter().map(ImportReport::from).collect())
}

/// One of the tenant's imports; another tenant's id, or no id at all, is not found.
pub async fn get(state: &AppState, tenant: &TenantId, raw_id: &str) -> Result<ImportReport> {
    let id = parse_id(raw_id, "import")?;
    state.store.import_report(tenant, &id).await?.map(ImportReport::from).ok_or(Error::NotFound("import"))
}
