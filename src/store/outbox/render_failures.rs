//! A claim's renders, recorded: a message whose template cannot be rendered
//! for its recipient becomes a dead letter with the reason, until its
//! campaign's renders keep failing (the rule is
//! [`crate::domain::render_failures`]). The campaign is then paused with
//! reason `render_failing`: the failing message that tipped it, and those
//! after it, wait as `paused` with their error, so that a resume (with a fixed
//! template) tries them again; dead letters from before stay dead letters.

use sqlx::FromRow;

use crate::domain::render_failures::{RenderTally, FIRST_RENDERS, RENDER_FAILING};
use crate::domain::ClaimedMessage;
use crate::store::{Backend, Store, WriteTx};

#[derive(FromRow)]
struct CampaignTally {
    state: Option<String>,
    render_counted: i64,
    render_failed: i64,
    render_failed_in_a_row: i64,
}

impl Store {
    /// Records the renders of a claim's messages (in the claim's order, all
    /// of `campaign_id`, or one transactional message): `None` for one
    /// rendered and claimed, else why its render failed. A failed message
    /// still queued becomes a dead letter, or `paused` once its campaign's
    /// renders keep failing; one no longer queued (another claim took it,
    /// or it was cancelled) is not counted.
    pub(super) async fn record_renders(
        &self,
        tx: &mut WriteTx,
        campaign_id: Option<&str>,
        outcomes: &[(&ClaimedMessage, Option<String>)],
    ) -> Result<(), sqlx::Error> {
        let now = tx.now;
        let failures = outcomes.iter().filter(|(_, r)| r.is_some()).count();
        let Some(campaign_id) = campaign_id else {
            // Transactional mail: a failed render is that email's dead letter.
            for (m, reason) in outcomes {
                if let Some(reason) = reason {
                    set_failed(tx, &m.id, "dead", reason, now).await?;
                }
            }
            return Ok(());
        };
        if failures == 0 {
            // All rendered: count them among the first renders, end any row of
            // failures. Once past both, nothing is written.
            if !outcomes.is_empty() {
                sqlx::query(
                    "UPDATE campaigns SET render_failed_in_a_row = 0, render_counted = CASE \
                       WHEN render_counted + $2 > $3 THEN $3 ELSE render_counted + $2 END \
                     WHERE id = $1 AND (render_counted < $3 OR render_failed_in_a_row > 0)",
                )
                .bind(campaign_id)
                .bind(i64::try_from(outcomes.len()).unwrap_or(i64::MAX))
                .bind(FIRST_RENDERS)
                .execute(&mut **tx)
                .await?;
            }
            return Ok(());
        }
        // The tally is read and written under the campaign's row lock
        // (PostgreSQL; SQLite has one writer), so claims of one campaign side
        // by side add up.
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let row: Option<CampaignTally> = sqlx::query_as(&format!(
            "SELECT state, render_counted, render_failed, render_failed_in_a_row FROM campaigns WHERE id = $1{lock}"
        ))
        .bind(campaign_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else { return Ok(()) };
        let mut tally = RenderTally {
            counted: row.render_counted,
            failed: row.render_failed,
            failed_in_a_row: row.render_failed_in_a_row,
        };
        // Paused already (by hand, or by a claim beside this one): failures wait for the resume.
        let mut paused = row.state.as_deref() == Some("paused");
        for (m, reason) in outcomes {
            let Some(reason) = reason else {
                if !paused {
                    tally = tally.record(true);
                }
                continue;
            };
            let (before, was_paused) = (tally, paused);
            if !paused {
                tally = tally.record(false);
                paused = tally.failing();
            }
            if !set_failed(tx, &m.id, if paused { "paused" } else { "dead" }, reason, now).await? {
                // Not this claim's after all.
                (tally, paused) = (before, was_paused);
            }
        }
        sqlx::query(
            "UPDATE campaigns SET render_counted = $2, render_failed = $3, render_failed_in_a_row = $4 WHERE id = $1",
        )
        .bind(campaign_id)
        .bind(tally.counted)
        .bind(tally.failed)
        .bind(tally.failed_in_a_row)
        .execute(&mut **tx)
        .await?;
        if paused {
            self.pause_render_failing(tx, campaign_id, now).await?;
        }
        Ok(())
    }

    /// Pauses a campaign whose renders keep failing (unless it is paused or
    /// cancelled already) and its queued messages. Rows another claim holds
    /// are skipped: that claim finds the campaign paused when it records its
    /// renders, and pauses them then.
    async fn pause_render_failing(&self, tx: &mut WriteTx, campaign_id: &str, now: i64) -> Result<(), sqlx::Error> {
        let done = sqlx::query(
            "UPDATE campaigns SET state = 'paused', pause_reason = $2 WHERE id = $1 AND state IS NULL \
               AND deleted_at IS NULL",
        )
        .bind(campaign_id)
        .bind(RENDER_FAILING)
        .execute(&mut **tx)
        .await?;
        let held = sqlx::query(&format!(
            "UPDATE messages SET status = 'paused', updated_at = $2 WHERE id IN (SELECT m.id FROM messages m \
               WHERE m.campaign_id = $1 AND m.status = 'queued'{})",
            self.skip_locked("m")
        ))
        .bind(campaign_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 1 {
            metrics::counter!("mailroom_campaigns_paused_total", "reason" => RENDER_FAILING).increment(1);
            tracing::warn!(campaign = %campaign_id, held = held.rows_affected(),
                "campaign paused: its renders keep failing (render_failing); the tenant can fix the template and resume");
        }
        Ok(())
    }
}

/// Moves a message whose render failed to `status`, if it is still queued.
async fn set_failed(tx: &mut WriteTx, id: &str, status: &str, reason: &str, now: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE messages SET status = $2, last_error = $3, updated_at = $4 WHERE id = $1 AND status = 'queued'",
    )
    .bind(id)
    .bind(status)
    .bind(reason)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
