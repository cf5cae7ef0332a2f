//! All SQL lives here, written once for SQLite and PostgreSQL through sqlx's
//! `Any` driver. The few statements that must differ sit side by side, chosen by
//! [`Backend`]. Other modules see typed rows and never a query string.

mod agent_lane;
mod automations;
mod campaigns;
mod consent;
mod contacts;
mod enqueue;
mod erasure;
mod events;
mod filter;
mod forms;
mod import;
mod import_reports;
mod import_topics;
mod lease;
mod messages;
mod outbox;
mod person_data;
mod reputation;
mod segment_members;
mod send_slots;
mod signups;
mod stats;
mod suppressions;
mod templates;
mod tenant_webhooks;
mod tenants;
mod topics;
mod ui_sessions;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Transaction};

/// Domain values the store's functions take and give, named here too for the
/// callers (front ends, tests) that reach them through the store.
pub use crate::domain::delivery_event::{EventOutcome, IncomingEvent};
pub use crate::domain::{ClaimedMessage, RenderClaimed, Targeting};
pub use agent_lane::{AgentCallBooking, AgentUsage};
pub use automations::{
    AgentDecision, AutomationRow, ClaimedRun, Engagement, NewAutomation, RunBatch, RunMessage, RunProgress, RunRow,
};
pub use campaigns::{CampaignRow, NewContent, Resumed, StatusCount};
pub use consent::ConsentRecordRow;
pub use contacts::{ContactFilter, ContactPatch, ContactRow, NewContact, SegmentRow};
pub use enqueue::{EnqueueOutcome, KeyRepeat, NewCampaign, NewSingle, RequestKey};
pub use erasure::ErasedCounts;
pub use events::{EventFilter, ListedEvent, StoredEvent};
pub use forms::{stored_list, FormFields, FormRow};
pub use import::{ImportOutcome, ImportRow, OnConflict};
pub use import_reports::{ImportEnding, ImportReportRow};
pub use messages::MessageRow;
pub use outbox::{
    BatchShape, ClaimAhead, ClaimedBatch, DueBatch, OutboundBatch, Settlement, Turn, IDEMPOTENCY_WINDOW_MS,
};
pub use person_data::{ExportEvent, ExportMessage};
pub use reputation::{ReputationChange, ResumeOutcome, TenantReputation, REPUTATION_EVENT};
pub use signups::{NewSignup, SignedUp, SignupTarget};
pub use stats::{Bucket, CampaignCounters, DAY_MS, HOUR_MS, METRICS};
pub use suppressions::{SuppressionRow, UnsubscribeTarget, Unsuppress};
pub use templates::{TemplateContent, TemplatePatch, TemplateRow};
pub(crate) use tenant_webhooks::enqueue_tenant_events;
pub use tenant_webhooks::{
    webhook_body, AttemptOutcome, ClaimedDelivery, DeliveryRow, DisablePolicy, EndpointPatch, EndpointRow, NewEndpoint,
};
pub use tenants::{ApiKeyRow, KeyOwner, TenantRow};
pub use topics::{ContactTopicRow, TopicCreated, TopicPatch, TopicRow, TOPICS_MAX};
pub use ui_sessions::UiSessionRow;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer at a time. Queuing this process's writers here,
    /// rather than in SQLite's busy handler (which sleeps for milliseconds between
    /// tries), keeps write latency low under concurrency.
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
    /// When transient bounces suppress an address.
    soft_bounce: SoftBounce,
    /// When a tenant's rates warn or pause its campaigns.
    reputation: crate::domain::ReputationPolicy,
    /// What time it is: the system's, or a test's that it moves ahead.
    clock: crate::domain::Clock,
    /// The server's secret, which keys the hashes of erased addresses.
    address_key: Arc<[u8]>,
}

/// `limit` transient bounces of one contact within `window_ms` suppress it (`soft_bounced`).
#[derive(Clone, Copy, Debug)]
pub struct SoftBounce {
    pub limit: i64,
    pub window_ms: i64,
}

impl Default for SoftBounce {
    fn default() -> Self {
        Self { limit: 3, window_ms: 30 * stats::DAY_MS }
    }
}

/// A write transaction (and, on SQLite, this process's writer slot until it ends).
pub(crate) struct WriteTx {
    tx: Transaction<'static, Any>,
    _writer: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// The transaction's time, read from the store's clock when it began.
    pub(crate) now: i64,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }

    /// Whether the tenant has fewer than `max` rows in `table`, with the
    /// tenant's row held until this transaction ends (PostgreSQL; SQLite's
    /// write transactions take turns already), so that the count and the
    /// insert it allows cannot interleave with another request's: how
    /// per-tenant limits hold under concurrent creations.
    pub(crate) async fn below_limit(&mut self, table: &str, tenant_id: &str, max: usize) -> Result<bool, sqlx::Error> {
        if self.tx.backend_name().eq_ignore_ascii_case("postgresql") {
            sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
                .bind(tenant_id)
                .execute(&mut *self.tx)
                .await?;
        }
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = $1"))
            .bind(tenant_id)
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(usize::try_from(n).is_ok_and(|n| n < max))
    }
}

impl std::ops::Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

/// Store errors that callers act on; everything else is an internal `sqlx::Error`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a row with this unique value already exists ({0})")]
    Duplicate(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl StoreError {
    fn from_sqlx(e: sqlx::Error) -> Self {
        if let Some(db) = e.as_database_error() {
            if db.is_unique_violation() {
                return Self::Duplicate(db.constraint().unwrap_or("unique").to_owned());
            }
        }
        Self::Db(e)
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Connects to `sqlite://...` (creating the file if missing) or `postgres://...`.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite:// or postgres://");
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url).context("Failed to parse DATABASE_URL")?;
        // Fail fast when the database is down: a request answers 503 within
        // seconds instead of holding its client for half a minute.
        let mut pool = AnyPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(5));
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the single writer; foreign keys make
                    // tenant deletion cascade; the busy timeout queues writers instead of failing.
                    // synchronous = FULL: a 2xx means committed, power cut or not
                    // (NORMAL may lose the last commits of a WAL database on power loss).
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = FULL",
                        "PRAGMA foreign_keys = ON",
                        "PRAGMA busy_timeout = 10000",
                        // Pages rewritten many times between checkpoints are copied back once.
                        "PRAGMA wal_autocheckpoint = 10000",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            });
        }
        // One direct connection first: the pool retries until its timeout and
        // then reports only that, where this says why ("connection refused").
        {
            use sqlx::Connection;
            let probe = AnyConnection::connect_with(&options).await.map_err(|e| {
                anyhow::anyhow!("could not connect to the database at {}: {}", masked_url(&url), connect_cause(&e))
            })?;
            let _ = probe.close().await;
        }
        let pool = pool.connect_with(options).await.map_err(|e| {
            anyhow::anyhow!("could not connect to the database at {}: {}", masked_url(&url), connect_cause(&e))
        })?;
        Ok(Self {
            pool,
            backend,
            sqlite_writer: Arc::new(tokio::sync::Mutex::new(())),
            soft_bounce: SoftBounce::default(),
            reputation: crate::domain::ReputationPolicy::default(),
            clock: crate::domain::Clock::system(),
            address_key: Arc::from(&b""[..]),
        })
    }

    /// Whether every migration this build knows of has been applied.
    pub async fn migrations_pending(&self) -> Result<bool, sqlx::Error> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        let applied: Result<i64, sqlx::Error> =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success").fetch_one(&self.pool).await;
        match applied {
            Ok(n) => Ok(usize::try_from(n).unwrap_or(0) < migrator.iter().count()),
            // No bookkeeping table yet: nothing was applied (a reachable database
            // that answers is the caller's other question).
            Err(sqlx::Error::Database(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await.context("Failed to apply migrations")?;
        Ok(())
    }

    /// Sets when transient bounces suppress an address (default: 3 within 30 days).
    pub fn with_soft_bounce(mut self, limit: u32, days: u32) -> Self {
        self.soft_bounce = SoftBounce { limit: i64::from(limit.max(1)), window_ms: i64::from(days) * stats::DAY_MS };
        self
    }

    /// Sets the server's secret, which keys the hashes that erased addresses
    /// are kept as (see [`crate::domain::address_hash`]).
    pub fn with_address_key(mut self, secret: &str) -> Self {
        self.address_key = Arc::from(secret.as_bytes());
        self
    }

    /// The keyed hash an erased address of this tenant is kept as.
    pub(crate) fn address_hash(&self, tenant_id: &str, email_normalized: &str) -> String {
        crate::domain::address_hash(&self.address_key, tenant_id, email_normalized)
    }

    /// The clock every time this store writes or compares is read from.
    pub fn clock(&self) -> &crate::domain::Clock {
        &self.clock
    }

    /// Milliseconds since the Unix epoch, by this store's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock up
    /// front (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes
    /// fails with SQLITE_BUSY when another writer committed in between.
    async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => {
                let writer = self.sqlite_writer.clone().lock_owned().await;
                let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                Ok(WriteTx { tx, _writer: Some(writer), now: self.now_ms() })
            }
            Backend::Postgres => Ok(WriteTx { tx: self.pool.begin().await?, _writer: None, now: self.now_ms() }),
        }
    }

    /// After a bulk load, refresh PostgreSQL's statistics of the tables it grew,
    /// so the next statements over them (a campaign's enqueue, an audience count)
    /// are planned for their real size rather than the empty table autovacuum
    /// last saw. SQLite plans without such statistics.
    pub(crate) async fn refresh_statistics(&self, tables: &[&str]) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres {
            sqlx::raw_sql(&format!("ANALYZE {}", tables.join(", "))).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// SQL expression for ids made in bulk: a fresh UUIDv7 prefix (time + random)
    /// bound as `$prefix`, then `n` as 12 hex digits. Ids of one statement are
    /// consecutive, so a million-row insert appends to the id index instead of
    /// splitting pages all over it.
    fn sql_sequential_id(&self, prefix: &str, n: &str) -> String {
        match self.backend {
            Backend::Postgres => format!("{prefix} || lpad(to_hex(CAST({n} AS BIGINT)), 12, '0')"),
            Backend::Sqlite => format!("{prefix} || printf('%012x', {n})"),
        }
    }

    /// SQL expression for message ids made in bulk: UUIDv7 with a dedicated
    /// counter (RFC 9562, section 6.2, method 1). The time (48 bits of
    /// milliseconds, [`time_prefix`]) is bound as `$prefix`; then a 24-bit
    /// counter `n` (the row's number in the statement) and 48 random bits per row:
    /// `tttttttt-tttt-7ccc-8ccc-rrrrrrrrrrrr`.
    ///
    /// Random where it matters: knowing one message id does not give another
    /// (its random part is 1 in 2^48). Ordered where it pays: ids of one enqueue
    /// sort in insertion order, so claiming them in id order reads neighbouring
    /// table pages. (Fully random ids cut SQLite's fan-out from 23,000 to 8,300
    /// emails/s: every claim then touched rows all over the table.)
    fn sql_random_id(&self, prefix: &str, n: &str) -> String {
        match self.backend {
            Backend::Postgres => format!(
                "{prefix} || '7' || lpad(to_hex((CAST({n} AS BIGINT) >> 12) & 4095), 3, '0') \
                 || '-8' || lpad(to_hex(CAST({n} AS BIGINT) & 4095), 3, '0') \
                 || '-' || right(CAST(gen_random_uuid() AS TEXT), 12)"
            ),
            // One `printf` rather than two, `hex(randomblob(..))` and four
            // concatenations: 0.4 s less of a 1M-row enqueue. `random()` draws
            // from the same generator as `randomblob`; its low 48 bits are used.
            Backend::Sqlite => format!(
                "printf('%s7%03x-8%03x-%012x', {prefix}, ({n} >> 12) & 4095, {n} & 4095, random() & 281474976710655)"
            ),
        }
    }

    /// ` FOR UPDATE SKIP LOCKED` on PostgreSQL, so several workers claim disjoint
    /// rows; SQLite has one writer at a time, so its claims are already exclusive.
    fn skip_locked(&self, table: &str) -> String {
        match self.backend {
            Backend::Postgres => format!(" FOR UPDATE OF {table} SKIP LOCKED"),
            Backend::Sqlite => String::new(),
        }
    }
}

/// The URL with its password replaced, for messages.
fn masked_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// What went wrong connecting, in the operator's words ("connection refused").
fn connect_cause(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused (is the database server running and listening there?)".to_owned()
        }
        sqlx::Error::PoolTimedOut => "timed out (is the database server reachable?)".to_owned(),
        other => other.to_string(),
    }
}

/// The time part of a fresh UUIDv7 (`xxxxxxxx-xxxx-`), to which
/// [`Store::sql_random_id`] appends a counter and random bits.
fn time_prefix() -> String {
    uuid::Uuid::now_v7().to_string()[..14].to_owned()
}

/// The first 24 characters of a fresh UUIDv7 (`xxxxxxxx-xxxx-7xxx-yxxx-`), to
/// which [`Store::sql_sequential_id`] appends a counter.
fn id_prefix() -> String {
    uuid::Uuid::now_v7().to_string()[..24].to_owned()
}

/// The statement as the connection's database should get it.
///
/// SQLite reads `$n` as a *named* parameter: preparing a statement looks each
/// name up among those seen before it, and sqlx, binding, looks up the name of
/// each parameter number again; both lookups are linear, so a statement with n
/// parameters costs n² (a group commit of 256 events, 3,072 parameters, spent
/// most of its time there). A plain `?` has no name and costs nothing to look
/// up. So on SQLite the `$n` become `?` when the statement numbers its
/// parameters 1, 2, 3, ... in the order they are written, each once (as
/// [`Placeholders`] from `after(0)` does), and `?n` otherwise (which at least
/// prepares without the lookup). PostgreSQL gets the statement as written.
pub(crate) fn native_sql<'a>(conn: &AnyConnection, sql: &'a str) -> std::borrow::Cow<'a, str> {
    if conn.backend_name().eq_ignore_ascii_case("postgresql") {
        return std::borrow::Cow::Borrowed(sql);
    }
    sqlite_sql(sql)
}

impl Store {
    /// [`native_sql`] for a statement run on the pool.
    fn native_sql<'a>(&self, sql: &'a str) -> std::borrow::Cow<'a, str> {
        match self.backend {
            Backend::Postgres => std::borrow::Cow::Borrowed(sql),
            Backend::Sqlite => sqlite_sql(sql),
        }
    }
}

/// [`native_sql`] for SQLite.
fn sqlite_sql(sql: &str) -> std::borrow::Cow<'_, str> {
    // (byte range of `$n`, n) outside quoted strings and identifiers.
    let bytes = sql.as_bytes();
    let mut params: Vec<(usize, usize, usize)> = Vec::new();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            // A doubled quote inside a quoted run closes and reopens it: same result.
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'$' => {
                let digits = bytes[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if digits > 0 {
                    let n = sql[i + 1..i + 1 + digits].parse().unwrap_or(0);
                    params.push((i, i + 1 + digits, n));
                    i += digits;
                }
            }
            None => {}
        }
        i += 1;
    }
    if params.is_empty() {
        return std::borrow::Cow::Borrowed(sql);
    }
    let in_order = params.iter().enumerate().all(|(k, &(_, _, n))| n == k + 1);
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for &(start, end, _) in &params {
        out.push_str(&sql[last..start]);
        out.push('?');
        if !in_order {
            out.push_str(&sql[start + 1..end]);
        }
        last = end;
    }
    out.push_str(&sql[last..]);
    std::borrow::Cow::Owned(out)
}

/// `$first, $first+1, ...` placeholders for an `IN (...)` list.
fn placeholders(first: usize, count: usize) -> String {
    Placeholders::after(first - 1).list(count)
}

/// `$n` placeholders numbered in the order they are written, for statements
/// built at run time. (sqlx's `QueryBuilder` writes `?` through the `Any`
/// driver, which PostgreSQL does not accept; both accept `$n`.)
pub(crate) struct Placeholders {
    last: usize,
}

impl Placeholders {
    /// Numbering continues after the `bound` parameters already written by hand.
    pub(crate) fn after(bound: usize) -> Self {
        Self { last: bound }
    }

    pub(crate) fn next(&mut self) -> String {
        self.last += 1;
        format!("${}", self.last)
    }

    /// `$a, $b, ...`: the next `count` placeholders.
    pub(crate) fn list(&mut self, count: usize) -> String {
        (0..count).map(|_| self.next()).collect::<Vec<_>>().join(", ")
    }

    /// A derived table of `rows` rows with these `columns`, each value a
    /// placeholder, to join an `UPDATE ... FROM` against:
    /// `(SELECT $a AS x, $b AS y UNION ALL SELECT ...)`. Not `VALUES ... AS
    /// v(x, y)`: SQLite cannot name the columns of a VALUES list.
    pub(crate) fn rows(&mut self, rows: usize, columns: &[&str]) -> String {
        let one = |p: &mut Self| {
            let values: Vec<String> = columns.iter().map(|c| format!("{} AS {c}", p.next())).collect();
            format!("SELECT {}", values.join(", "))
        };
        let all: Vec<String> = (0..rows).map(|_| one(self)).collect();
        format!("({})", all.join(" UNION ALL "))
    }
}

impl Store {
    /// Runs one statement outside any transaction (test setup: `CREATE DATABASE`).
    pub async fn execute_raw(&self, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sql).execute(&self.pool).await.map(|_| ())
    }
}

impl Store {
    /// Deletes one of a tenant's rows by id; what hangs off it goes by `ON DELETE CASCADE`.
    async fn delete_owned(
        &self,
        table: &'static str,
        tenant_id: &crate::domain::TenantId,
        id: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1 AND id = $2"))
            .bind(tenant_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Rows in one of mailroom's tables (tests and diagnostics).
    pub async fn count_rows(&self, table: &str) -> Result<i64, sqlx::Error> {
        const TABLES: [&str; 16] = [
            "tenants",
            "api_keys",
            "contacts",
            "contact_tags",
            "segments",
            "segment_members",
            "suppressions",
            "campaigns",
            "messages",
            "batches",
            "webhook_events",
            "idempotency_keys",
            "settings",
            "consent_records",
            "automation_runs",
            "consent_clients",
        ];
        if !TABLES.contains(&table) {
            return Err(sqlx::Error::Protocol(format!("unknown table {table}")));
        }
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&self.pool).await
    }
}

#[cfg(test)]
mod tests {
    use super::sqlite_sql;

    #[test]
    fn parameters_numbered_in_order_become_plain_question_marks() {
        assert_eq!(sqlite_sql("INSERT INTO t VALUES ($1, $2), ($3, $4)"), "INSERT INTO t VALUES (?, ?), (?, ?)");
        assert_eq!(sqlite_sql("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn parameters_out_of_order_or_repeated_keep_their_numbers() {
        assert_eq!(sqlite_sql("UPDATE t SET a = $2 WHERE id = $1"), "UPDATE t SET a = ?2 WHERE id = ?1");
        assert_eq!(sqlite_sql("VALUES ($1, $2, $1)"), "VALUES (?1, ?2, ?1)");
        assert_eq!(sqlite_sql("VALUES ($10)"), "VALUES (?10)");
    }

    #[test]
    fn dollars_inside_strings_and_identifiers_are_left_alone() {
        assert_eq!(
            sqlite_sql("SELECT json_extract(x, '$.a'), '$1', \"$2\" FROM t WHERE a = $1 AND b = 'it''s $2'"),
            "SELECT json_extract(x, '$.a'), '$1', \"$2\" FROM t WHERE a = ? AND b = 'it''s $2'"
        );
    }
}
