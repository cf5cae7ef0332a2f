//! Whose mail a claim takes next, and what it costs them: tenants in turn, and
//! a tenant's campaigns in turn, by the rule of [`crate::domain::fair_share`].
//!
//! The turn order lives in the database: `send_turns` holds each tenant's pass
//! per lane (transactional, campaign) and the clock its campaigns share,
//! `send_clocks` each lane's virtual time, `campaign_turns` each
//! campaign's pass. A claim reads them to choose (outside its transaction) and
//! moves them in its transaction, so processes sharing one database share one
//! order; two processes choosing at the same moment may serve the same tenant
//! twice, and each of those requests is charged to it.

use sqlx::FromRow;

use crate::domain::{fair_share, outbox_policy};
use crate::store::enqueue::{PRIORITY_CAMPAIGN, PRIORITY_TRANSACTIONAL};
use crate::store::{placeholders, Store, WriteTx};

/// The lanes, in the order they are served: transactional mail first.
const LANES: [i64; 2] = [PRIORITY_TRANSACTIONAL, PRIORITY_CAMPAIGN];

/// What one claim serves: a tenant in a lane (and, for campaign mail, one of
/// its campaigns), headed by the message first in that queue.
#[derive(Clone)]
pub struct Turn {
    /// The messages' priority: [`PRIORITY_TRANSACTIONAL`] or [`PRIORITY_CAMPAIGN`].
    pub lane: i64,
    pub tenant_id: String,
    weight: i64,
    pub(super) head: Head,
}

#[cfg(test)]
impl Turn {
    /// A turn of `tenant_id`'s campaign `campaign` headed by message `head`,
    /// for tests of what claims turns.
    pub fn of_campaign(tenant_id: &str, campaign: &str, head: &str) -> Self {
        Turn {
            lane: PRIORITY_CAMPAIGN,
            tenant_id: tenant_id.to_owned(),
            weight: 1,
            head: Head {
                id: head.to_owned(),
                campaign_id: Some(campaign.to_owned()),
                solo: 0,
                domain_status: Some("verified".to_owned()),
                reputation: None,
                campaign_topic: None,
            },
        }
    }
}

/// [`Head`]s of messages `m`, to be narrowed by a `WHERE`.
pub(super) const HEAD: &str = "SELECT m.id, m.campaign_id, m.solo, t.domain_status, r.state AS reputation, \
     (SELECT cp.topic_id FROM campaigns cp WHERE cp.id = m.campaign_id) AS campaign_topic \
   FROM messages m JOIN tenants t ON t.id = m.tenant_id LEFT JOIN tenant_reputation r ON r.tenant_id = m.tenant_id";

/// The message first in the queue a claim serves.
#[derive(Clone, FromRow)]
pub(super) struct Head {
    pub(super) id: String,
    pub(super) campaign_id: Option<String>,
    pub(super) solo: i64,
    pub(super) domain_status: Option<String>,
    pub(super) reputation: Option<String>,
    /// The topic its campaign targets (a campaign's topic never changes):
    /// a claim of a campaign without one skips the topic check per message.
    pub(super) campaign_topic: Option<String>,
}

impl Head {
    /// Whether its claim is one message alone: transactional mail, and
    /// messages split out of a rejected batch.
    pub(super) fn single(&self) -> bool {
        self.campaign_id.is_none() || self.solo == 1
    }

    /// Whether its campaign is held (as first read: the claim reads it again).
    pub(super) fn held(&self) -> bool {
        outbox_policy::campaign_held(
            self.campaign_id.is_some(),
            self.domain_status.as_deref(),
            self.reputation.as_deref(),
        )
    }
}

#[derive(FromRow)]
struct Candidate {
    id: String,
    send_weight: i64,
}

// Whether a tenant (or campaign) has due mail is a subquery with `LIMIT 1`,
// not `EXISTS`: PostgreSQL turns an `EXISTS` into a semi-join over every
// queued message (13 ms a claim with 100,000 queued), where the subquery
// stays one index probe per row.
impl Store {
    /// The next turn, transactional mail first: of the tenants with due mail in
    /// a lane, but for those in `busy` (this process is claiming for them in
    /// that lane), the one whose next request starts first; then, for campaign
    /// mail, of that tenant's campaigns likewise. `None` when nothing is due.
    pub async fn next_turn(
        &self,
        transactional_only: bool,
        busy: &[(String, i64)],
    ) -> Result<Option<Turn>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let now = self.now_ms();
        let lanes = if transactional_only { &LANES[..1] } else { &LANES[..] };
        for &lane in lanes {
            let skip: Vec<&str> = busy.iter().filter(|(_, l)| *l == lane).map(|(t, _)| t.as_str()).collect();
            let not_busy = match skip.len() {
                0 => String::new(),
                n => format!(" AND t.id NOT IN ({})", placeholders(3, n)),
            };
            let sql = format!(
                "SELECT t.id, t.send_weight FROM tenants t \
                 LEFT JOIN send_turns st ON st.tenant_id = t.id AND st.lane = $2 \
                 WHERE (SELECT 1 FROM messages m WHERE m.priority = $2 AND m.tenant_id = t.id \
                   AND m.status = 'queued' AND m.due_at <= $1 LIMIT 1) IS NOT NULL{not_busy} \
                 ORDER BY {start}, t.id LIMIT 1",
                start = start_sql("COALESCE(st.pass, 0)", "(SELECT vtime FROM send_clocks WHERE lane = $2)"),
            );
            let sql = crate::store::native_sql(&conn, &sql);
            let mut q = sqlx::query_as::<_, Candidate>(&sql).bind(now).bind(lane);
            for t in &skip {
                q = q.bind(*t);
            }
            let Some(tenant) = q.fetch_optional(&mut *conn).await? else { continue };
            let head = match lane {
                PRIORITY_CAMPAIGN => self.campaign_head(&mut conn, &tenant.id, now).await?,
                _ => None,
            };
            // Transactional mail oldest first (and campaign mail of no campaign, should there be any).
            let head = match head {
                Some(head) => Some(head),
                None => {
                    sqlx::query_as(&format!(
                        "{} WHERE m.priority = $2 AND m.tenant_id = $3 AND m.status = 'queued' AND m.due_at <= $1 \
                         ORDER BY m.due_at LIMIT 1",
                        HEAD
                    ))
                    .bind(now)
                    .bind(lane)
                    .bind(&tenant.id)
                    .fetch_optional(&mut *conn)
                    .await?
                }
            };
            if let Some(head) = head {
                return Ok(Some(Turn { lane, tenant_id: tenant.id, weight: tenant.send_weight, head }));
            }
        }
        Ok(None)
    }

    /// The first due message of the tenant's campaign whose turn it is.
    async fn campaign_head(
        &self,
        conn: &mut sqlx::AnyConnection,
        tenant_id: &str,
        now: i64,
    ) -> Result<Option<Head>, sqlx::Error> {
        let campaign: Option<String> = sqlx::query_scalar(&format!(
            "SELECT c.id FROM campaigns c LEFT JOIN campaign_turns ct ON ct.campaign_id = c.id \
             WHERE c.tenant_id = $1 AND (c.scheduled_at IS NULL OR c.scheduled_at <= $2) \
               AND (SELECT 1 FROM messages m WHERE m.campaign_id = c.id AND m.status = 'queued' AND m.due_at <= $2 LIMIT 1) \
                 IS NOT NULL \
             ORDER BY {start}, c.id LIMIT 1",
            start = start_sql(
                "COALESCE(ct.pass, 0)",
                "(SELECT st.inner_clock FROM send_turns st WHERE st.tenant_id = $1 AND st.lane = $3)"
            ),
        ))
        .bind(tenant_id)
        .bind(now)
        .bind(PRIORITY_CAMPAIGN)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(campaign) = campaign else { return Ok(None) };
        sqlx::query_as(&format!(
            "{} WHERE m.campaign_id = $1 AND m.status = 'queued' AND m.due_at <= $2 ORDER BY m.id LIMIT 1",
            HEAD
        ))
        .bind(&campaign)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
    }
}

/// Charges `requests` provider requests to `turn`'s tenant in its lane (and to
/// its campaign among the tenant's), and moves the lane's virtual time to
/// where the tenant's turn started. In the claim's transaction.
pub async fn charge(tx: &mut WriteTx, turn: &Turn, requests: usize) -> Result<(), sqlx::Error> {
    if requests == 0 {
        return Ok(());
    }
    charge_queue(tx, &turn.tenant_id, turn.lane, turn.weight, requests).await?;
    if let (PRIORITY_CAMPAIGN, Some(campaign)) = (turn.lane, &turn.head.campaign_id) {
        // The campaign's pass moves on from where its turn started among its
        // tenant's campaigns (the tenant's clock), in one statement.
        let cost = fair_share::cost(requests, 1);
        let clock = "COALESCE((SELECT st.inner_clock FROM send_turns st WHERE st.tenant_id = $2 AND st.lane = $3), 0)";
        let pass: i64 = sqlx::query_scalar(&format!(
            "INSERT INTO campaign_turns (campaign_id, pass) VALUES ($1, {clock} + $4) \
             ON CONFLICT (campaign_id) DO UPDATE SET pass = {} + $4 RETURNING pass",
            start_sql("campaign_turns.pass", clock)
        ))
        .bind(campaign)
        .bind(&turn.tenant_id)
        .bind(turn.lane)
        .bind(cost)
        .fetch_one(&mut **tx)
        .await?;
        sqlx::query("UPDATE send_turns SET inner_clock = $3 WHERE tenant_id = $1 AND lane = $2 AND inner_clock < $3")
            .bind(&turn.tenant_id)
            .bind(turn.lane)
            .bind(pass - cost)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Charges a retried request to its tenant's queue in its lane.
pub async fn charge_retry(tx: &mut WriteTx, tenant_id: &str, transactional: bool) -> Result<(), sqlx::Error> {
    let weight: Option<i64> = sqlx::query_scalar("SELECT send_weight FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_optional(&mut **tx)
        .await?;
    let lane = if transactional { PRIORITY_TRANSACTIONAL } else { PRIORITY_CAMPAIGN };
    charge_queue(tx, tenant_id, lane, weight.unwrap_or(1), 1).await
}

/// Charges `requests` to a tenant's queue in `lane`: its pass moves on from
/// where its turn started, in one statement (the row is locked meanwhile, so
/// two claims at once are both charged), and the lane's virtual time to that start.
async fn charge_queue(
    tx: &mut WriteTx,
    tenant_id: &str,
    lane: i64,
    weight: i64,
    requests: usize,
) -> Result<(), sqlx::Error> {
    let cost = fair_share::cost(requests, weight);
    // A new row's pass is the lane's virtual time plus the cost, so
    // `excluded.pass - $3` is that virtual time.
    let pass: i64 = sqlx::query_scalar(&format!(
        "INSERT INTO send_turns (tenant_id, lane, pass, inner_clock) \
         VALUES ($1, $2, COALESCE((SELECT vtime FROM send_clocks WHERE lane = $2), 0) + $3, 0) \
         ON CONFLICT (tenant_id, lane) DO UPDATE SET pass = {} + $3 RETURNING pass",
        start_sql("send_turns.pass", "excluded.pass - $3")
    ))
    .bind(tenant_id)
    .bind(lane)
    .bind(cost)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query("UPDATE send_clocks SET vtime = $2 WHERE lane = $1 AND vtime < $2")
        .bind(lane)
        .bind(pass - cost)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// SQL for [`fair_share::start`] of a pass and a virtual time.
fn start_sql(pass: &str, vtime: &str) -> String {
    format!("CASE WHEN {pass} > COALESCE({vtime}, 0) THEN {pass} ELSE COALESCE({vtime}, 0) END")
}
