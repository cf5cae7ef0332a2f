//! The operator's health table: every tenant's figures over a period and its
//! dead letters, in a constant number of grouped queries however many tenants
//! there are (never a query per tenant).

use std::collections::HashMap;

use super::Store;

/// One tenant's figures over a period, and its dead letters now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantFigures {
    pub sent: i64,
    pub delivered: i64,
    pub bounced: i64,
    pub complained: i64,
    pub dead: i64,
}

impl Store {
    /// Per tenant id: the hourly counters summed over `[from, to)`, and the
    /// count of dead letters. Tenants with neither are absent. Two queries.
    pub async fn tenant_health(&self, from: i64, to: i64) -> Result<HashMap<String, TenantFigures>, sqlx::Error> {
        let mut out: HashMap<String, TenantFigures> = HashMap::new();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT tenant_id, metric, CAST(SUM(n) AS BIGINT) FROM tenant_stats \
             WHERE bucket_start >= $1 AND bucket_start < $2 \
               AND metric IN ('sent', 'delivered', 'bounced', 'complained') \
             GROUP BY tenant_id, metric",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        for (tenant, metric, n) in rows {
            let h = out.entry(tenant).or_default();
            match metric.as_str() {
                "sent" => h.sent += n,
                "delivered" => h.delivered += n,
                "bounced" => h.bounced += n,
                "complained" => h.complained += n,
                _ => {}
            }
        }
        // The same partial index as the dead-letter gauge reads.
        let dead: Vec<(String, i64)> =
            sqlx::query_as("SELECT tenant_id, COUNT(*) FROM messages WHERE status = 'dead' GROUP BY tenant_id")
                .fetch_all(&self.pool)
                .await?;
        for (tenant, n) in dead {
            out.entry(tenant).or_default().dead = n;
        }
        Ok(out)
    }
}
