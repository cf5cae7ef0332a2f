//! Webhooks to tenants: their endpoints, and the durable queue of deliveries
//! the notifier works through.
//!
//! Like the outbox, a delivery is claimed under a lease with a fresh token, and
//! its outcome is recorded only while it still holds that token: a worker that
//! stalled past its lease cannot overwrite what the next holder recorded.

use serde_json::{json, Value};
use sqlx::{AnyConnection, FromRow};

use super::lease::{lease, TENANT_WEBHOOK_DELIVERIES};
use super::{native_sql, placeholders, Backend, Placeholders, Store};
use crate::domain::webhook_shares::{manual_send, take_in_turn, DueDelivery, InFlight, InFlightCaps};
use crate::domain::{new_id, rfc3339, TenantId};

/// The PostgreSQL transaction lock delivery claims take turns on (any fixed
/// number: `pg_advisory_xact_lock` keys are the application's to choose).
const CLAIM_LOCK: i64 = 0x6d61_696c_7768_6b31;

/// Rows one multi-row insert writes at most (SQLite binds at most 32,766 parameters).
const INSERT_CHUNK: usize = 500;

#[derive(Clone, Debug, FromRow)]
pub struct EndpointRow {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub description: Option<String>,
    /// Comma-separated.
    pub event_types: String,
    pub enabled: i64,
    pub disabled_reason: Option<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    pub consecutive_failures: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl EndpointRow {
    pub fn event_types(&self) -> Vec<String> {
        self.event_types.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect()
    }
}

/// A new endpoint, already validated.
pub struct NewEndpoint<'a> {
    pub url: &'a str,
    pub description: Option<&'a str>,
    pub event_types: &'a [String],
    pub enabled: bool,
    pub secret: &'a str,
}

/// Absent fields stay as they are.
#[derive(Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

#[derive(Clone, Debug, FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A delivery claimed for one attempt, with what it takes to sign and send it.
#[derive(Clone, Debug, FromRow)]
pub struct ClaimedDelivery {
    /// Also the `webhook-id`.
    pub id: String,
    /// Empty for an alert to the operator (`url` and `secret` then come from
    /// the configuration, not from an endpoint).
    pub endpoint_id: String,
    pub tenant_id: String,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    pub payload: String,
    /// Attempts recorded before this one.
    pub attempts: i64,
    #[sqlx(default)]
    pub claim_token: String,
    /// 0: the endpoint was disabled since this was queued.
    pub enabled: i64,
}

/// What one attempt gave.
pub struct AttemptOutcome<'a> {
    pub delivered: bool,
    pub status_code: Option<i64>,
    pub error: Option<&'a str>,
    pub latency_ms: i64,
    /// For a failure: when to try again, or `None` when the schedule is spent.
    pub retry_at: Option<i64>,
}

/// When an endpoint is disabled for failing.
pub struct DisablePolicy {
    pub after_failures: i64,
    pub after_ms: i64,
}

const ENDPOINT_COLUMNS: &str = "id, tenant_id, url, description, event_types, enabled, disabled_reason, secret, \
   previous_secret, previous_secret_expires_at, consecutive_failures, created_at, updated_at";
const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_type, status, attempts, next_attempt_at, last_status_code, \
   last_error, last_latency_ms, created_at, updated_at";

/// The body every endpoint receives (Standard Webhooks): `{type, timestamp, data}`.
pub fn webhook_body(event_type: &str, data: &Value, at_ms: i64) -> String {
    json!({ "type": event_type, "timestamp": rfc3339(at_ms), "data": data }).to_string()
}

/// Queues `event_type` with `data` for every enabled endpoint of the tenant
/// subscribed to it, inside the caller's transaction; returns how many were queued.
pub(crate) async fn enqueue_tenant_events(
    tx: &mut AnyConnection,
    now: i64,
    tenant_id: &str,
    event_type: &str,
    data: &Value,
) -> Result<u64, sqlx::Error> {
    let endpoints = enabled_endpoints(tx, &[tenant_id]).await?;
    let body = webhook_body(event_type, data, now);
    let rows: Vec<QueuedDelivery> = endpoints
        .iter()
        .filter(|e| e.subscribes_to(event_type))
        .map(|e| QueuedDelivery { endpoint_id: &e.id, tenant_id, event_type, payload: body.clone() })
        .collect();
    insert_deliveries(tx, &rows, now).await
}

/// An enabled endpoint's subscription, as ingestion needs it.
#[derive(FromRow)]
pub(crate) struct Subscription {
    pub id: String,
    pub tenant_id: String,
    event_types: String,
}

impl Subscription {
    pub fn subscribes_to(&self, event_type: &str) -> bool {
        self.event_types.split(',').any(|t| t == event_type)
    }
}

/// The enabled endpoints of these tenants: one indexed query.
pub(crate) async fn enabled_endpoints(
    tx: &mut AnyConnection,
    tenant_ids: &[&str],
) -> Result<Vec<Subscription>, sqlx::Error> {
    if tenant_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, tenant_id, event_types FROM webhook_endpoints WHERE tenant_id IN ({}) AND enabled = 1",
        placeholders(1, tenant_ids.len())
    );
    let sql = native_sql(tx, &sql);
    let mut q = sqlx::query_as(&sql);
    for t in tenant_ids {
        q = q.bind(*t);
    }
    q.fetch_all(&mut *tx).await
}

pub(crate) struct QueuedDelivery<'a> {
    pub endpoint_id: &'a str,
    pub tenant_id: &'a str,
    pub event_type: &'a str,
    pub payload: String,
}

/// Inserts deliveries, due now, in multi-row statements.
pub(crate) async fn insert_deliveries(
    tx: &mut AnyConnection,
    rows: &[QueuedDelivery<'_>],
    now: i64,
) -> Result<u64, sqlx::Error> {
    let mut inserted = 0;
    for chunk in rows.chunks(INSERT_CHUNK) {
        // Every parameter once, in order (`now` bound per row): see `native_sql`.
        let mut p = Placeholders::after(0);
        let values: Vec<String> =
            chunk.iter().map(|_| format!("({}, 'pending', 0, {})", p.list(5), p.list(3))).collect();
        let sql = format!(
            "INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_type, payload, status, attempts, \
               next_attempt_at, created_at, updated_at) VALUES {}",
            values.join(", ")
        );
        let sql = native_sql(tx, &sql);
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q.bind(new_id()).bind(r.endpoint_id).bind(r.tenant_id).bind(r.event_type).bind(&r.payload);
            q = q.bind(now).bind(now).bind(now);
        }
        inserted += q.execute(&mut *tx).await?.rows_affected();
    }
    Ok(inserted)
}

/// Lanes (endpoints, and the operator's alerts) one statement of
/// [`due_in_turn`] reads at most (SQLite allows 500 terms in a compound select).
const LANES_PER_READ: usize = 100;

/// The oldest due deliveries of each of `lanes` (an endpoint, `""` for the
/// operator's alerts), no more than it may still have in flight, listed
/// endpoints in turn: every endpoint's first, then every endpoint's second,
/// ..., each turn the longest due first. One index range per lane.
async fn due_in_turn(
    tx: &mut AnyConnection,
    now: i64,
    lanes: &[&DueDelivery],
    in_flight: &[InFlight],
    caps: InFlightCaps,
    max: usize,
) -> Result<Vec<DueDelivery>, sqlx::Error> {
    use std::collections::HashMap;
    let mut per_endpoint: HashMap<&str, usize> = HashMap::new();
    let mut per_tenant: HashMap<&str, usize> = HashMap::new();
    for f in in_flight {
        *per_endpoint.entry(&f.endpoint_id).or_default() += f.count;
        if !f.endpoint_id.is_empty() {
            *per_tenant.entry(&f.tenant_id).or_default() += f.count;
        }
    }
    let room = |lane: &DueDelivery| {
        let endpoint =
            caps.per_endpoint.saturating_sub(per_endpoint.get(lane.endpoint_id.as_str()).copied().unwrap_or(0));
        let tenant = if lane.endpoint_id.is_empty() {
            usize::MAX
        } else {
            caps.per_tenant.saturating_sub(per_tenant.get(lane.tenant_id.as_str()).copied().unwrap_or(0))
        };
        i64::try_from(endpoint.min(tenant).min(max)).unwrap_or(i64::MAX)
    };
    // Ordered by `endpoint_id` too, constant within a lane, so that the alert
    // lane (`IS NULL`) also reads its index range in order: PostgreSQL takes
    // `= $n`, not `IS NULL`, as fixing a column's order.
    let mut rows: Vec<(String, String, String, i64)> = Vec::new();
    for chunk in lanes.chunks(LANES_PER_READ) {
        // Every parameter once, in order: see `native_sql`.
        let mut p = Placeholders::after(0);
        let mut branches = Vec::with_capacity(chunk.len());
        for (i, lane) in chunk.iter().enumerate() {
            let endpoint = if lane.endpoint_id.is_empty() { "IS NULL".to_owned() } else { format!("= {}", p.next()) };
            let (due_by, limit) = (p.next(), p.next());
            branches.push(format!(
                "SELECT * FROM (SELECT d.id, COALESCE(d.endpoint_id, '') AS endpoint_id, d.tenant_id, \
                   d.next_attempt_at FROM webhook_deliveries d \
                 WHERE d.endpoint_id {endpoint} AND d.status = 'pending' AND d.next_attempt_at <= {due_by} \
                 ORDER BY d.endpoint_id, d.next_attempt_at, d.id LIMIT {limit}) AS lane{i}"
            ));
        }
        let sql = branches.join(" UNION ALL ");
        let sql = native_sql(tx, &sql);
        let mut q = sqlx::query_as(&sql);
        for lane in chunk {
            if !lane.endpoint_id.is_empty() {
                q = q.bind(lane.endpoint_id.as_str());
            }
            q = q.bind(now).bind(room(lane));
        }
        let read: Vec<(String, String, String, i64)> = q.fetch_all(&mut *tx).await?;
        rows.extend(read);
    }
    // Each row's turn is its place among its endpoint's, by (due time, id);
    // then every turn in order, the longest due first. (Ids are UUIDs, hex
    // and dashes: Rust orders them as the database does, whatever its collation.)
    rows.sort_by(|a, b| (&a.1, a.3, &a.0).cmp(&(&b.1, b.3, &b.0)));
    let mut turned: Vec<(usize, i64, DueDelivery)> = Vec::with_capacity(rows.len());
    for (id, endpoint_id, tenant_id, due_at) in rows {
        let turn = match turned.last() {
            Some((turn, _, prev)) if prev.endpoint_id == endpoint_id => turn + 1,
            _ => 1,
        };
        turned.push((turn, due_at, DueDelivery { id, endpoint_id, tenant_id }));
    }
    turned.sort_by(|a, b| (a.0, a.1, &a.2.id).cmp(&(b.0, b.1, &b.2.id)));
    Ok(turned.into_iter().map(|(_, _, d)| d).collect())
}

impl Store {
    /// Queues an event for the tenant's subscribed endpoints in a transaction of
    /// its own (for callers that have none open).
    pub async fn enqueue_tenant_events(
        &self,
        tenant_id: &TenantId,
        event_type: &str,
        data: &Value,
    ) -> Result<u64, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let queued = enqueue_tenant_events(&mut tx, now, tenant_id.as_str(), event_type, data).await?;
        tx.commit().await?;
        Ok(queued)
    }

    /// Adds an endpoint unless the tenant has `max` already (`None`): the count
    /// and the insert are one transaction, with the tenant's row held, so
    /// concurrent creations cannot pass the limit.
    pub async fn create_endpoint(
        &self,
        tenant_id: &TenantId,
        new: NewEndpoint<'_>,
        max: usize,
    ) -> Result<Option<EndpointRow>, sqlx::Error> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        if !tx.below_limit("webhook_endpoints", tenant_id.as_str(), max).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        let row = sqlx::query_as(&format!(
            "INSERT INTO webhook_endpoints (id, tenant_id, url, description, event_types, enabled, secret, created_at, \
               updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {ENDPOINT_COLUMNS}"
        ))
        .bind(new_id())
        .bind(tenant_id)
        .bind(new.url)
        .bind(new.description)
        .bind(new.event_types.join(","))
        .bind(i64::from(new.enabled))
        .bind(new.secret)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(row))
    }

    pub async fn endpoints(&self, tenant_id: &TenantId) -> Result<Vec<EndpointRow>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY id"))
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
    }

    pub async fn endpoint(&self, tenant_id: &TenantId, id: &str) -> Result<Option<EndpointRow>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"))
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Applies a patch; enabling an endpoint clears its failure record.
    pub async fn update_endpoint(
        &self,
        tenant_id: &TenantId,
        id: &str,
        patch: EndpointPatch,
    ) -> Result<Option<EndpointRow>, sqlx::Error> {
        let (set_description, description) = match patch.description {
            Some(d) => (1i64, d),
            None => (0, None),
        };
        sqlx::query_as(&format!(
            "UPDATE webhook_endpoints SET url = COALESCE($3, url), \
               description = CASE WHEN $4 = 1 THEN $5 ELSE description END, \
               event_types = COALESCE($6, event_types), \
               enabled = COALESCE($7, enabled), \
               disabled_reason = CASE WHEN $7 = 1 THEN NULL ELSE disabled_reason END, \
               consecutive_failures = CASE WHEN $7 = 1 THEN 0 ELSE consecutive_failures END, \
               failing_since = CASE WHEN $7 = 1 THEN NULL ELSE failing_since END, \
               updated_at = $8 \
             WHERE tenant_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}"
        ))
        .bind(tenant_id)
        .bind(id)
        .bind(patch.url)
        .bind(set_description)
        .bind(description)
        .bind(patch.event_types.map(|t| t.join(",")))
        .bind(patch.enabled.map(i64::from))
        .bind(self.now_ms())
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn delete_endpoint(&self, tenant_id: &TenantId, id: &str) -> Result<bool, sqlx::Error> {
        self.delete_owned("webhook_endpoints", tenant_id, id).await
    }

    /// A new signing secret; the current one keeps signing too until `overlap_until`.
    pub async fn rotate_endpoint_secret(
        &self,
        tenant_id: &TenantId,
        id: &str,
        secret: &str,
        overlap_until: i64,
    ) -> Result<Option<EndpointRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_expires_at = $4, secret = $3, \
               updated_at = $5 WHERE tenant_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}"
        ))
        .bind(tenant_id)
        .bind(id)
        .bind(secret)
        .bind(overlap_until)
        .bind(self.now_ms())
        .fetch_optional(&self.pool)
        .await
    }

    /// One page of an endpoint's deliveries, newest first, `limit + 1` rows;
    /// `before` is the last id of the previous page.
    pub async fn deliveries(
        &self,
        tenant_id: &TenantId,
        endpoint_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE tenant_id = $1 AND endpoint_id = $2 AND id < $3 ORDER BY id DESC LIMIT $4"
        ))
        .bind(tenant_id)
        .bind(endpoint_id)
        // Ids are UUIDs (hex and dashes): every one sorts below "g".
        .bind(before.unwrap_or("g"))
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn delivery(
        &self,
        tenant_id: &TenantId,
        endpoint_id: &str,
        id: &str,
    ) -> Result<Option<DeliveryRow>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3"
        ))
        .bind(tenant_id)
        .bind(endpoint_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Whether one of an endpoint's deliveries has an attempt in flight (claimed, its lease running).
    pub async fn delivery_in_flight(
        &self,
        tenant_id: &TenantId,
        endpoint_id: &str,
        id: &str,
    ) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3 \
               AND claim_token IS NOT NULL AND status = 'pending' AND next_attempt_at > $4",
        )
        .bind(tenant_id)
        .bind(endpoint_id)
        .bind(id)
        .bind(self.now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Queues a delivery again, now, under its own id (a receiver deduplicating
    /// on `webhook-id` sees it as the same message), with a fresh retry schedule.
    pub async fn replay_delivery(
        &self,
        tenant_id: &TenantId,
        endpoint_id: &str,
        id: &str,
    ) -> Result<Option<DeliveryRow>, sqlx::Error> {
        // Not while an attempt is in flight (claimed, its lease running): its
        // claim would be dropped and the delivery claimed again at once, one
        // more request to the endpoint past its cap for each replay.
        sqlx::query_as(&format!(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $4, claim_token = NULL, \
               updated_at = $4 WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3 \
               AND NOT (claim_token IS NOT NULL AND status = 'pending' AND next_attempt_at > $4) \
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .bind(tenant_id)
        .bind(endpoint_id)
        .bind(id)
        .bind(self.now_ms())
        .fetch_optional(&self.pool)
        .await
    }

    /// Queues one delivery of `event_type` to one endpoint, whatever it
    /// subscribes to (the test event); returns its id.
    pub async fn enqueue_to_endpoint(
        &self,
        tenant_id: &TenantId,
        endpoint_id: &str,
        event_type: &str,
        data: &Value,
    ) -> Result<String, sqlx::Error> {
        let now = self.now_ms();
        let id = new_id();
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_type, payload, status, attempts, \
               next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6)",
        )
        .bind(&id)
        .bind(endpoint_id)
        .bind(tenant_id)
        .bind(event_type)
        .bind(webhook_body(event_type, data, now))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Claims up to `max` due deliveries for `lease_ms` under one fresh token,
    /// endpoints in turn and within `caps` (see
    /// [`crate::domain::webhook_shares::take_in_turn`]). What is in flight is
    /// counted here, from the leases in the database, so the caps hold across
    /// every worker process: PostgreSQL claimers take turns on a transaction
    /// lock, SQLite's write transactions take turns anyway. Due deliveries to
    /// an endpoint disabled meanwhile are settled as failed instead.
    ///
    /// A claim reads what it may take, never the whole backlog (a campaign
    /// can leave 100,000 deliveries due to one endpoint, and on SQLite this
    /// runs as the database's only writer): each endpoint's oldest due
    /// delivery (one probe of `webhook_deliveries_endpoint_due` per endpoint,
    /// and one for the operator's alerts), then, for the endpoints the first
    /// turn takes, their oldest due deliveries up to what each may still have
    /// in flight (an index range each).
    pub async fn claim_deliveries(
        &self,
        lease_ms: i64,
        max: usize,
        caps: InFlightCaps,
    ) -> Result<Vec<ClaimedDelivery>, sqlx::Error> {
        if max == 0 || !self.any_due(&TENANT_WEBHOOK_DELIVERIES, self.now_ms()).await? {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        if self.backend() == Backend::Postgres {
            // (Selecting the `void` itself would not decode through the Any driver.)
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS turn")
                .bind(CLAIM_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', claim_token = NULL, \
               last_error = 'the endpoint is disabled', updated_at = $1 \
             WHERE status = 'pending' AND next_attempt_at <= $1 \
               AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE enabled = 0)",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let in_flight: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT COALESCE(endpoint_id, ''), tenant_id, COUNT(*) FROM webhook_deliveries \
             WHERE claim_token IS NOT NULL AND status = 'pending' AND next_attempt_at > $1 \
             GROUP BY endpoint_id, tenant_id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let in_flight: Vec<InFlight> = in_flight
            .into_iter()
            .map(|(endpoint_id, tenant_id, n)| InFlight {
                endpoint_id,
                tenant_id,
                count: usize::try_from(n).unwrap_or(usize::MAX),
            })
            .collect();
        // The first turn: every endpoint's oldest due delivery, the longest
        // due first. Whatever the turns after it take comes from the
        // endpoints this one takes: an endpoint or tenant passed over now
        // stays saturated, and the first turn ends at `max` endpoints. (On
        // `ORDER BY d.endpoint_id, ...` see `due_in_turn`.)
        let firsts: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT lane.endpoint_id, f.tenant_id, f.id FROM ( \
               SELECT e.id AS endpoint_id, (SELECT d.id FROM webhook_deliveries d \
                 WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.next_attempt_at <= $1 \
                 ORDER BY d.endpoint_id, d.next_attempt_at, d.id LIMIT 1) AS first_id \
               FROM webhook_endpoints e \
               UNION ALL \
               SELECT '' AS endpoint_id, (SELECT d.id FROM webhook_deliveries d \
                 WHERE d.endpoint_id IS NULL AND d.status = 'pending' AND d.next_attempt_at <= $1 \
                 ORDER BY d.endpoint_id, d.next_attempt_at, d.id LIMIT 1) AS first_id) lane \
             JOIN webhook_deliveries f ON f.id = lane.first_id \
             ORDER BY f.next_attempt_at, f.id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let firsts: Vec<DueDelivery> =
            firsts.into_iter().map(|(endpoint_id, tenant_id, id)| DueDelivery { id, endpoint_id, tenant_id }).collect();
        let lanes = take_in_turn(&firsts, &in_flight, caps, max);
        let due = due_in_turn(&mut tx, now, &lanes, &in_flight, caps, max).await?;
        let taken = take_in_turn(&due, &in_flight, caps, max);
        if taken.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = taken.iter().map(|d| d.id.as_str()).collect();
        let sql = format!(
            "SELECT d.id, COALESCE(d.endpoint_id, '') AS endpoint_id, d.tenant_id, COALESCE(e.url, '') AS url, \
               COALESCE(e.secret, '') AS secret, e.previous_secret, e.previous_secret_expires_at, \
               d.payload, d.attempts, COALESCE(e.enabled, 1) AS enabled \
             FROM webhook_deliveries d LEFT JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.status = 'pending' AND d.id IN ({}){}",
            placeholders(1, ids.len()),
            self.skip_locked("d")
        );
        let mut q = sqlx::query_as(&sql);
        for id in &ids {
            q = q.bind(*id);
        }
        let mut live: Vec<ClaimedDelivery> = q.fetch_all(&mut *tx).await?;
        if !live.is_empty() {
            let ids: Vec<&str> = live.iter().map(|d| d.id.as_str()).collect();
            let token = lease(&mut tx, &TENANT_WEBHOOK_DELIVERIES, &ids, lease_ms, now).await?;
            for d in &mut live {
                d.claim_token.clone_from(&token);
            }
        }
        tx.commit().await?;
        // In the order they were taken: endpoints in turn.
        live.sort_by_key(|d| ids.iter().position(|id| *id == d.id));
        Ok(live)
    }

    /// Takes one manual send (a test event or a replay) from an endpoint's
    /// allowance of `per_minute`: `Ok(true)` when allowed, `Ok(false)` when the
    /// endpoint is not the tenant's, `Err(ms)` to wait when spent.
    pub async fn take_manual_send(
        &self,
        tenant_id: &TenantId,
        endpoint_id: &str,
        per_minute: u32,
    ) -> Result<Result<bool, i64>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let now = tx.now;
        let lock = if self.backend() == Backend::Postgres { " FOR UPDATE" } else { "" };
        let tat: Option<Option<i64>> = sqlx::query_scalar(&format!(
            "SELECT manual_sends_tat FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2{lock}"
        ))
        .bind(tenant_id)
        .bind(endpoint_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(tat) = tat else {
            tx.rollback().await?;
            return Ok(Ok(false));
        };
        match manual_send(tat, now, per_minute) {
            Ok(next) => {
                sqlx::query("UPDATE webhook_endpoints SET manual_sends_tat = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant_id)
                    .bind(endpoint_id)
                    .bind(next)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Ok(true))
            }
            Err(wait_ms) => {
                tx.rollback().await?;
                Ok(Err(wait_ms))
            }
        }
    }

    /// Records one attempt's outcome while the claim still holds, and keeps the
    /// endpoint's failure record: a success clears it; a failure may disable
    /// the endpoint. Returns whether the endpoint was disabled by this failure.
    pub async fn record_attempt(
        &self,
        d: &ClaimedDelivery,
        outcome: &AttemptOutcome<'_>,
        policy: &DisablePolicy,
    ) -> Result<bool, sqlx::Error> {
        let now = self.now_ms();
        let (status, next) = match (outcome.delivered, outcome.retry_at) {
            (true, _) => ("delivered", now),
            (false, Some(at)) => ("pending", at),
            (false, None) => ("failed", now),
        };
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, next_attempt_at = $4, \
               claim_token = NULL, last_status_code = $5, last_error = $6, last_latency_ms = $7, updated_at = $8 \
             WHERE id = $1 AND claim_token = $2",
        )
        .bind(&d.id)
        .bind(&d.claim_token)
        .bind(status)
        .bind(next)
        .bind(outcome.status_code)
        .bind(outcome.error)
        .bind(outcome.latency_ms)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            // The claim was lost (its lease ran out, or the delivery was replayed).
            tx.commit().await?;
            return Ok(false);
        }
        let mut disabled = false;
        if outcome.delivered {
            sqlx::query(
                "UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL \
                 WHERE id = $1 AND (consecutive_failures <> 0 OR failing_since IS NOT NULL)",
            )
            .bind(&d.endpoint_id)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(
                "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1, \
                   failing_since = COALESCE(failing_since, $2) WHERE id = $1",
            )
            .bind(&d.endpoint_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let off = sqlx::query(
                "UPDATE webhook_endpoints SET enabled = 0, updated_at = $4, disabled_reason = CASE \
                   WHEN consecutive_failures >= $2 THEN 'disabled after ' || CAST(consecutive_failures AS TEXT) \
                     || ' consecutive failed deliveries' \
                   ELSE 'disabled after failing for 5 days' END \
                 WHERE id = $1 AND enabled = 1 AND (consecutive_failures >= $2 OR failing_since <= $3)",
            )
            .bind(&d.endpoint_id)
            .bind(policy.after_failures)
            .bind(now - policy.after_ms)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            disabled = off.rows_affected() == 1;
        }
        tx.commit().await?;
        Ok(disabled)
    }
}
