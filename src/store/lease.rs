//! Claiming due rows of a queue table under a lease, with a fresh claim
//! token: how workers take automation runs, tenant-webhook deliveries and the
//! outbox's batches that are due again. Only the holder of the token records
//! an outcome; a row whose lease runs out (its worker died) is due again.
//!
//! The statements are the same on both backends but for the lock: PostgreSQL
//! locks the rows it reads (`FOR UPDATE OF … SKIP LOCKED`, see
//! [`Store::skip_locked`]) so workers claim disjoint rows; SQLite has one
//! writer at a time (`BEGIN IMMEDIATE`), so its read is exclusive already.

use sqlx::AnyConnection;

use super::{placeholders, Store};

/// A table of rows claimed under a lease: `status = 'pending'` rows are due
/// from their `due` column on; a claim moves that column to the lease's end.
pub(super) struct LeasedQueue {
    pub table: &'static str,
    /// The table's alias in the claim's read.
    pub alias: &'static str,
    pub due: &'static str,
}

pub(super) const AUTOMATION_RUNS: LeasedQueue = LeasedQueue { table: "automation_runs", alias: "r", due: "due_at" };
pub(super) const TENANT_WEBHOOK_DELIVERIES: LeasedQueue =
    LeasedQueue { table: "webhook_deliveries", alias: "d", due: "next_attempt_at" };
pub(super) const OUTBOX_BATCHES: LeasedQueue = LeasedQueue { table: "batches", alias: "b", due: "due_at" };

impl Store {
    /// Whether any row is due by `now`: a cheap read first, without the write
    /// lock, since most steps find nothing due.
    pub(super) async fn any_due(&self, q: &LeasedQueue, now: i64) -> Result<bool, sqlx::Error> {
        let due: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT 1 FROM {} WHERE status = 'pending' AND {} <= $1 LIMIT 1",
            q.table, q.due
        ))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(due.is_some())
    }

    /// The claim's read, inside its write transaction: `select` (columns and
    /// `FROM`, naming the table by its alias) narrowed to at most `$2` rows due
    /// by `$1`, the longest due first, locked for this claim.
    pub(super) fn due_rows_sql(&self, q: &LeasedQueue, select: &str) -> String {
        let (a, due) = (q.alias, q.due);
        format!(
            "{select} WHERE {a}.status = 'pending' AND {a}.{due} <= $1 ORDER BY {a}.{due} LIMIT $2{}",
            self.skip_locked(a)
        )
    }
}

/// What else a claim records on the rows it leases.
#[derive(Clone, Copy)]
pub(super) enum AlsoRecord {
    Nothing,
    /// An outbox batch due again: one more claim (claims that end without an
    /// answer are counted against [`crate::domain::outbox_policy::MAX_LOST_CLAIMS`]),
    /// and since when an earlier attempt may have reached the provider.
    BatchClaim {
        uncertain_since: Option<i64>,
    },
}

/// Leases rows `ids` of `q` until `now + lease_ms` under one fresh claim
/// token, in one statement; returns the token.
pub(super) async fn lease(
    tx: &mut AnyConnection,
    q: &LeasedQueue,
    ids: &[&str],
    lease_ms: i64,
    now: i64,
) -> Result<String, sqlx::Error> {
    lease_recording(tx, q, ids, lease_ms, now, AlsoRecord::Nothing).await
}

/// [`lease`], recording `also` in the same statement.
pub(super) async fn lease_recording(
    tx: &mut AnyConnection,
    q: &LeasedQueue,
    ids: &[&str],
    lease_ms: i64,
    now: i64,
    also: AlsoRecord,
) -> Result<String, sqlx::Error> {
    let token = crate::domain::new_id();
    if ids.is_empty() {
        return Ok(token);
    }
    let (extra, first_id) = match also {
        AlsoRecord::Nothing => ("", 4),
        AlsoRecord::BatchClaim { .. } => (", claims = claims + 1, uncertain_since = $4", 5),
    };
    let sql = format!(
        "UPDATE {} SET claim_token = $1, {} = $2, updated_at = $3{extra} WHERE id IN ({})",
        q.table,
        q.due,
        placeholders(first_id, ids.len())
    );
    let mut update = sqlx::query(&sql).bind(&token).bind(now + lease_ms).bind(now);
    if let AlsoRecord::BatchClaim { uncertain_since } = also {
        update = update.bind(uncertain_since);
    }
    for id in ids {
        update = update.bind(*id);
    }
    update.execute(&mut *tx).await?;
    Ok(token)
}
