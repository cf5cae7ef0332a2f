//! Delivery analytics kept as counters, so reading a campaign's figures costs
//! the same for ten recipients as for a million.
//!
//! A message counts once per figure: the first time it reaches it (delivered,
//! opened, clicked, a link, ...) is a row of `message_firsts`, inserted with
//! `ON CONFLICT DO NOTHING`. Only the rows that insert really made
//! (`RETURNING`) move the counters, in the same transaction: duplicate
//! deliveries, events out of order and concurrent writers all count once.
//! `sent`, which every email reaches, is a flag on the message instead
//! (`messages.sent_counted`, 0 until counted, set from 0 to 1 by whichever of
//! the outbox and the provider's `email.sent` comes first), by the same rule.
//! The outbox records a provider's answer and counts in one statement: it
//! sets 1 where it finds 0 and 2 where it finds a count already, so that, in
//! its transaction, the messages at 1 are the ones it counted.

use std::collections::BTreeMap;

use sqlx::FromRow;

use super::suppressions::TOPIC_LEAVERS;
use super::{native_sql, Placeholders, Store};
use crate::domain::TenantId;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// A message reaching a figure (`kind`) at `at` (epoch ms), maybe for the first time.
#[derive(Clone, Debug)]
pub struct First {
    pub tenant_id: String,
    pub message_id: String,
    pub campaign_id: Option<String>,
    pub kind: String,
    pub at: i64,
}

/// Figures counted per campaign and per tenant-hour (links only per campaign).
pub const METRICS: [&str; 11] = [
    "sent",
    "delivered",
    "delivery_delayed",
    "opened",
    "clicked",
    "bounced",
    "bounced_hard",
    "bounced_soft",
    "complained",
    "failed",
    "suppressed",
];

#[derive(FromRow)]
struct Inserted {
    tenant_id: String,
    kind: String,
    campaign_id: Option<String>,
    created_at: i64,
}

/// Records firsts and moves the counters of those that are new: at most one
/// statement per table, whatever the number of firsts (each aggregated in Rust
/// first, so no multi-row upsert touches one key twice).
pub(crate) async fn record_firsts(tx: &mut sqlx::AnyConnection, firsts: Vec<First>) -> Result<(), sqlx::Error> {
    // One candidate per (message, figure): the earliest time in this group.
    let mut unique: BTreeMap<(String, String, String), First> = BTreeMap::new();
    for f in firsts {
        let key = (f.tenant_id.clone(), f.message_id.clone(), f.kind.clone());
        match unique.get_mut(&key) {
            Some(prev) if prev.at <= f.at => {}
            Some(prev) => *prev = f,
            None => {
                unique.insert(key, f);
            }
        }
    }
    if unique.is_empty() {
        return Ok(());
    }
    let mut inserted: Vec<Inserted> = Vec::with_capacity(unique.len());
    let (sent, all): (Vec<&First>, Vec<&First>) = unique.values().partition(|f| f.kind == "sent");
    if !sent.is_empty() {
        let at: BTreeMap<&str, i64> = sent.iter().map(|f| (f.message_id.as_str(), f.at)).collect();
        let ids: Vec<&str> = at.keys().copied().collect();
        for (id, tenant_id, campaign_id) in count_sent(tx, &ids).await? {
            let created_at = at.get(id.as_str()).copied().unwrap_or_default();
            inserted.push(Inserted { tenant_id, kind: "sent".into(), campaign_id, created_at });
        }
    }
    // 5 parameters a row: keep well under SQLite's and PostgreSQL's limits.
    for chunk in all.chunks(2000) {
        let mut p = Placeholders::after(0);
        let rows: Vec<String> = chunk.iter().map(|_| format!("({})", p.list(5))).collect();
        let sql = format!(
            "INSERT INTO message_firsts (tenant_id, message_id, kind, campaign_id, created_at) VALUES {} \
             ON CONFLICT (tenant_id, message_id, kind) DO NOTHING RETURNING tenant_id, kind, campaign_id, created_at",
            rows.join(", ")
        );
        let sql = native_sql(tx, &sql);
        let mut q = sqlx::query_as::<_, Inserted>(&sql);
        for f in chunk {
            q = q.bind(&f.tenant_id).bind(&f.message_id).bind(&f.kind).bind(&f.campaign_id).bind(f.at);
        }
        inserted.extend(q.fetch_all(&mut *tx).await?);
    }
    add_counts(tx, &inserted).await
}

/// Messages the provider accepted, counted as sent for the first time by the
/// outbox: how many, of which tenant and campaign (the outbox knows no event
/// times: they count at `now`).
pub(crate) struct NewlySent {
    pub tenant_id: String,
    pub campaign_id: Option<String>,
    pub n: i64,
}

/// Moves the `sent` counters for what the outbox counted (see [`NewlySent`]):
/// one upsert per table for a whole group of batches.
pub(crate) async fn record_accepted(
    tx: &mut sqlx::AnyConnection,
    sent: &[NewlySent],
    now: i64,
) -> Result<(), sqlx::Error> {
    let hour = now.div_euclid(HOUR_MS) * HOUR_MS;
    let mut campaign: BTreeMap<(&str, &str, &str), i64> = BTreeMap::new();
    let mut tenant: BTreeMap<(&str, i64, &str), i64> = BTreeMap::new();
    for s in sent.iter().filter(|s| s.n > 0) {
        if let Some(c) = &s.campaign_id {
            *campaign.entry((s.tenant_id.as_str(), c.as_str(), "sent")).or_default() += s.n;
        }
        *tenant.entry((s.tenant_id.as_str(), hour, "sent")).or_default() += s.n;
    }
    write_counters(tx, &campaign, &BTreeMap::new(), &tenant).await
}

/// Marks these messages' `sent` figure counted: (id, tenant, campaign) of
/// those not counted before.
async fn count_sent(
    tx: &mut sqlx::AnyConnection,
    message_ids: &[&str],
) -> Result<Vec<(String, String, Option<String>)>, sqlx::Error> {
    let mut counted = Vec::with_capacity(message_ids.len());
    for chunk in message_ids.chunks(2000) {
        let mut p = Placeholders::after(0);
        let sql = format!(
            "UPDATE messages SET sent_counted = 1 WHERE id IN ({}) AND sent_counted = 0 \
             RETURNING id, tenant_id, campaign_id",
            p.list(chunk.len())
        );
        let sql = native_sql(tx, &sql);
        let mut q = sqlx::query_as::<_, (String, String, Option<String>)>(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        counted.extend(q.fetch_all(&mut *tx).await?);
    }
    Ok(counted)
}

async fn add_counts(tx: &mut sqlx::AnyConnection, inserted: &[Inserted]) -> Result<(), sqlx::Error> {
    let mut campaign: BTreeMap<(&str, &str, &str), i64> = BTreeMap::new();
    let mut links: BTreeMap<(&str, &str, &str), i64> = BTreeMap::new();
    let mut tenant: BTreeMap<(&str, i64, &str), i64> = BTreeMap::new();
    for row in inserted {
        match (row.kind.strip_prefix("link:"), row.campaign_id.as_deref()) {
            (Some(link), Some(c)) => *links.entry((row.tenant_id.as_str(), c, link)).or_default() += 1,
            (Some(_), None) => {}
            (None, c) => {
                if let Some(c) = c {
                    *campaign.entry((row.tenant_id.as_str(), c, row.kind.as_str())).or_default() += 1;
                }
                let hour = row.created_at.div_euclid(HOUR_MS) * HOUR_MS;
                *tenant.entry((row.tenant_id.as_str(), hour, row.kind.as_str())).or_default() += 1;
            }
        }
    }
    write_counters(tx, &campaign, &links, &tenant).await
}

/// Adds to the counters: per campaign, per campaign link, per tenant-hour;
/// one upsert per table (none for an empty one).
async fn write_counters(
    tx: &mut sqlx::AnyConnection,
    campaign: &BTreeMap<(&str, &str, &str), i64>,
    links: &BTreeMap<(&str, &str, &str), i64>,
    tenant: &BTreeMap<(&str, i64, &str), i64>,
) -> Result<(), sqlx::Error> {
    upsert(
        tx,
        "campaign_stats (tenant_id, campaign_id, metric, n)",
        "tenant_id, campaign_id, metric",
        campaign,
        |q, k| q.bind(k.0.to_owned()).bind(k.1.to_owned()).bind(k.2.to_owned()),
    )
    .await?;
    upsert(tx, "campaign_links (tenant_id, campaign_id, link, n)", "tenant_id, campaign_id, link", links, |q, k| {
        q.bind(k.0.to_owned()).bind(k.1.to_owned()).bind(k.2.to_owned())
    })
    .await?;
    upsert(
        tx,
        "tenant_stats (tenant_id, bucket_start, metric, n)",
        "tenant_id, bucket_start, metric",
        tenant,
        |q, k| q.bind(k.0.to_owned()).bind(k.1).bind(k.2.to_owned()),
    )
    .await
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// One multi-row `INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n` (keys unique).
async fn upsert<K: Ord>(
    tx: &mut sqlx::AnyConnection,
    table: &str,
    key: &str,
    counts: &BTreeMap<K, i64>,
    bind: impl for<'q> Fn(AnyQuery<'q>, &K) -> AnyQuery<'q>,
) -> Result<(), sqlx::Error> {
    if counts.is_empty() {
        return Ok(());
    }
    let name = table.split_whitespace().next().unwrap_or(table);
    let mut p = Placeholders::after(0);
    let rows: Vec<String> = counts.iter().map(|_| format!("({})", p.list(4))).collect();
    let sql = format!(
        "INSERT INTO {table} VALUES {} ON CONFLICT ({key}) DO UPDATE SET n = {name}.n + excluded.n",
        rows.join(", ")
    );
    let sql = native_sql(tx, &sql);
    let mut q = sqlx::query(&sql);
    for (k, n) in counts {
        q = bind(q, k).bind(*n);
    }
    q.execute(&mut *tx).await.map(|_| ())
}

/// One campaign's counters.
#[derive(Clone, Debug, Default)]
pub struct CampaignCounters {
    pub recipients: i64,
    pub metrics: BTreeMap<String, i64>,
    pub unsubscribed: i64,
    /// (link, unique clicks), most clicked first.
    pub top_links: Vec<(String, i64)>,
}

/// Figures of one time bucket.
#[derive(Clone, Debug, Default)]
pub struct Bucket {
    pub recipients: i64,
    pub unsubscribed: i64,
    pub metrics: BTreeMap<String, i64>,
}

impl Store {
    /// A campaign's counters (None: no such campaign for this tenant).
    pub async fn campaign_counters(
        &self,
        tenant_id: &TenantId,
        campaign_id: &str,
        top: i64,
    ) -> Result<Option<CampaignCounters>, sqlx::Error> {
        let recipients: Option<i64> = sqlx::query_scalar(
            "SELECT recipient_count FROM campaigns WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        )
        .bind(tenant_id)
        .bind(campaign_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(recipients) = recipients else { return Ok(None) };
        let metrics: Vec<(String, i64)> =
            sqlx::query_as("SELECT metric, n FROM campaign_stats WHERE tenant_id = $1 AND campaign_id = $2")
                .bind(tenant_id)
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
        let top_links: Vec<(String, i64)> = sqlx::query_as(
            "SELECT link, n FROM campaign_links WHERE tenant_id = $1 AND campaign_id = $2 ORDER BY n DESC, link LIMIT $3",
        )
        .bind(tenant_id)
        .bind(campaign_id)
        .bind(top)
        .fetch_all(&self.pool)
        .await?;
        let unsubscribed: i64 =
            self.campaign_unsubscribes(tenant_id, Some(campaign_id)).await?.iter().map(|(_, n)| n).sum();
        Ok(Some(CampaignCounters { recipients, metrics: metrics.into_iter().collect(), unsubscribed, top_links }))
    }

    /// Figures per bucket (`bucket_ms`: an hour or a day, UTC) in `[from, to)`,
    /// for one tenant or (None) all of them. Keys are bucket starts.
    pub async fn bucket_counters(
        &self,
        tenant_id: Option<&TenantId>,
        from: i64,
        to: i64,
        bucket_ms: i64,
    ) -> Result<BTreeMap<i64, Bucket>, sqlx::Error> {
        let tenant = tenant_id.map_or("", TenantId::as_str);
        let mut out: BTreeMap<i64, Bucket> = BTreeMap::new();
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT (bucket_start / $4) * $4 AS b, metric, CAST(SUM(n) AS BIGINT) FROM tenant_stats \
             WHERE ($1 = '' OR tenant_id = $1) AND bucket_start >= $2 AND bucket_start < $3 GROUP BY b, metric",
        )
        .bind(tenant)
        .bind(from)
        .bind(to)
        .bind(bucket_ms)
        .fetch_all(&self.pool)
        .await?;
        for (b, metric, n) in rows {
            *out.entry(b).or_default().metrics.entry(metric).or_default() += n;
        }
        // Each: one sum per bucket, the tenant as $1 ('' for all), [from, to) as $2 and $3, the bucket as $4.
        let per_bucket = |sql: String| async move {
            sqlx::query_as::<_, (i64, i64)>(&sql)
                .bind(tenant)
                .bind(from)
                .bind(to)
                .bind(bucket_ms)
                .fetch_all(&self.pool)
                .await
        };
        let recipients = per_bucket(
            "SELECT (created_at / $4) * $4 AS b, CAST(SUM(recipient_count) AS BIGINT) FROM campaigns \
             WHERE ($1 = '' OR tenant_id = $1) AND created_at >= $2 AND created_at < $3 GROUP BY b"
                .into(),
        )
        .await?;
        for (b, n) in recipients {
            out.entry(b).or_default().recipients += n;
        }
        let unsubscribed = per_bucket(
            "SELECT (created_at / $4) * $4 AS b, COUNT(*) FROM suppressions WHERE ($1 = '' OR tenant_id = $1) \
             AND reason = 'unsubscribed' AND created_at >= $2 AND created_at < $3 GROUP BY b"
                .into(),
        )
        .await?;
        // Each person once per campaign, as the campaigns count them, at the first time they left.
        let left_topic = per_bucket(format!(
            "SELECT (f.at / $4) * $4 AS b, COUNT(*) FROM (SELECT r.campaign_id, r.contact_id, MIN(r.at) AS at \
               {TOPIC_LEAVERS} AND ($1 = '' OR r.tenant_id = $1) GROUP BY r.campaign_id, r.contact_id) f \
             WHERE f.at >= $2 AND f.at < $3 GROUP BY b"
        ))
        .await?;
        for (b, n) in unsubscribed.into_iter().chain(left_topic) {
            out.entry(b).or_default().unsubscribed += n;
        }
        Ok(out)
    }
}

impl Store {
    /// Bench seeding: a campaign of `messages` delivered messages with
    /// `per_message` events each (delivered, opened, clicked on one of ten
    /// links, ...), written in bulk straight into the tables, and its counters
    /// set from a recount of those events (`per_message` 0: messages only, with
    /// provider ids `prov-0`, `prov-1`, ...). Returns the campaign id.
    pub async fn seed_campaign_events(
        &self,
        tenant_id: &TenantId,
        messages: i64,
        per_message: i64,
    ) -> Result<String, sqlx::Error> {
        const KINDS: [&str; 3] = ["email.delivered", "email.opened", "email.clicked"];
        let per_message = per_message.max(0);
        let campaign = crate::domain::new_id();
        let now = self.now_ms();
        let series = |n: &str| {
            match self.backend {
            super::Backend::Postgres => format!("generate_series(0, {n} - 1) AS seq(i)"),
            super::Backend::Sqlite => format!(
                "(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < {n}) SELECT i FROM s) AS seq"
            ),
        }
        };
        let prefix = super::id_prefix();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO campaigns (id, tenant_id, subject, html, from_address, targeting, recipient_count, created_at) \
             VALUES ($1, $2, 'bench', 'h', 'hello@bench.example.com', '{}', $3, $4)",
        )
        .bind(&campaign)
        .bind(tenant_id)
        .bind(messages)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO messages (id, tenant_id, campaign_id, to_email, priority, status, due_at, provider_id, created_at, updated_at) \
             SELECT {id}, $1, $2, 'user' || CAST(seq.i AS TEXT) || '@example.org', 1, 'clicked', $4, \
               'prov-' || CAST(seq.i AS TEXT), $4, $4 FROM {series} WHERE true",
            id = self.sql_sequential_id("$5", "seq.i"),
            series = series("$3"),
        ))
        .bind(tenant_id)
        .bind(&campaign)
        .bind(messages)
        .bind(now)
        .bind(&prefix)
        .execute(&mut *tx)
        .await?;
        if per_message == 0 {
            tx.commit().await?;
            self.refresh_statistics(&["messages"]).await?;
            return Ok(campaign);
        }
        let kind = format!(
            "CASE seq.i % {per_message} WHEN 0 THEN '{}' WHEN 1 THEN '{}' WHEN 2 THEN '{}' ELSE 'email.opened' END",
            KINDS[0], KINDS[1], KINDS[2]
        );
        sqlx::query(&format!(
            "INSERT INTO webhook_events (svix_id, event_type, provider_email_id, message_id, tenant_id, payload, received_at, \
               campaign_id, link, occurred_at) \
             SELECT 'seed_' || CAST(seq.i AS TEXT), {kind}, 'prov-' || CAST(seq.i / {per_message} AS TEXT), {id}, $1, '{{}}', $4, $2, \
               CASE seq.i % {per_message} WHEN 2 THEN 'https://example.org/l' || CAST((seq.i / {per_message}) % 10 AS TEXT) END, \
               $4 - $3 + seq.i FROM {series} WHERE true",
            id = self.sql_sequential_id("$5", &format!("(seq.i / {per_message})")),
            series = series("$3"),
        ))
        .bind(tenant_id)
        .bind(&campaign)
        .bind(messages * per_message)
        .bind(now)
        .bind(&prefix)
        .execute(&mut *tx)
        .await?;
        // The counters, from a recount of what was just written.
        sqlx::query(
            "INSERT INTO campaign_stats (tenant_id, campaign_id, metric, n) \
             SELECT $1, $2, SUBSTR(event_type, 7), COUNT(DISTINCT message_id) FROM webhook_events \
             WHERE campaign_id = $2 GROUP BY event_type",
        )
        .bind(tenant_id)
        .bind(&campaign)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO campaign_stats (tenant_id, campaign_id, metric, n) VALUES ($1, $2, 'sent', $3)")
            .bind(tenant_id)
            .bind(&campaign)
            .bind(messages)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO campaign_links (tenant_id, campaign_id, link, n) \
             SELECT $1, $2, link, COUNT(DISTINCT message_id) FROM webhook_events \
             WHERE campaign_id = $2 AND link IS NOT NULL GROUP BY link",
        )
        .bind(tenant_id)
        .bind(&campaign)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.refresh_statistics(&["messages", "webhook_events", "campaign_stats", "campaign_links"]).await?;
        Ok(campaign)
    }
}
