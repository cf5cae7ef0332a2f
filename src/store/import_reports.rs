//! Reports of streamed contact imports: one row per import, its counters
//! moved with each committed chunk (see `Store::import_chunk`), its ending
//! written once the body is read or cut.

use sqlx::FromRow;

use super::Store;
use crate::domain::TenantId;

const REPORT_COLUMNS: &str = "id, tenant_id, format, on_conflict, status, end_reason, created, updated, skipped, \
                              rejected, errors, started_at, finished_at";

/// A stored import report.
#[derive(Clone, Debug, FromRow)]
pub struct ImportReportRow {
    pub id: String,
    pub tenant_id: String,
    /// `csv`, `ndjson` or `json`.
    pub format: String,
    /// `skip` or `update`.
    pub on_conflict: String,
    /// `running`, `completed`, `ended_early`, `refused` or `failed`.
    pub status: String,
    pub end_reason: Option<String>,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub rejected: i64,
    /// JSON list of the first rejected rows, `[{line, reason}]`.
    pub errors: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// How an import ended: its status and what only the importer knows (rows
/// refused while parsing; the committed counters are already stored).
pub struct ImportEnding<'a> {
    pub status: &'a str,
    pub end_reason: Option<&'a str>,
    /// Rows refused while parsing (the database's refusals are counted with each chunk).
    pub parse_rejected: u64,
    /// JSON list of the first rejected rows.
    pub errors: &'a str,
}

impl Store {
    /// Records that an import began (`running`, nothing written yet).
    pub async fn start_import(
        &self,
        tenant_id: &TenantId,
        id: &str,
        format: &str,
        on_conflict: &str,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO contact_imports (tenant_id, id, format, on_conflict, status, started_at) \
             VALUES ($1, $2, $3, $4, 'running', $5)",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(format)
        .bind(on_conflict)
        .bind(tx.now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Moves an import's counters by one chunk's outcome, inside the chunk's transaction.
    pub(super) async fn count_import_chunk(
        tx: &mut sqlx::AnyConnection,
        tenant_id: &TenantId,
        id: &str,
        outcome: &super::ImportOutcome,
    ) -> Result<(), sqlx::Error> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        sqlx::query(
            "UPDATE contact_imports SET created = created + $3, updated = updated + $4, skipped = skipped + $5, \
             rejected = rejected + $6 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(n(outcome.created))
        .bind(n(outcome.updated))
        .bind(n(outcome.skipped))
        .bind(n(outcome.rejected.len() as u64))
        .execute(&mut *tx)
        .await
        .map(|_| ())
    }

    /// Writes how an import ended.
    pub async fn finish_import(
        &self,
        tenant_id: &TenantId,
        id: &str,
        ending: &ImportEnding<'_>,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE contact_imports SET status = $3, end_reason = $4, rejected = rejected + $5, errors = $6, \
             finished_at = $7 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(ending.status)
        .bind(ending.end_reason)
        .bind(i64::try_from(ending.parse_rejected).unwrap_or(i64::MAX))
        .bind(ending.errors)
        .bind(tx.now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The tenant's most recent imports, newest first.
    pub async fn import_reports(&self, tenant_id: &TenantId, limit: i64) -> Result<Vec<ImportReportRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {REPORT_COLUMNS} FROM contact_imports WHERE tenant_id = $1 \
             ORDER BY started_at DESC, id DESC LIMIT $2"
        ))
        .bind(tenant_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// One of the tenant's imports.
    pub async fn import_report(&self, tenant_id: &TenantId, id: &str) -> Result<Option<ImportReportRow>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {REPORT_COLUMNS} FROM contact_imports WHERE tenant_id = $1 AND id = $2"))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }
}
