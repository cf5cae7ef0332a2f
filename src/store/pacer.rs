//! The account-wide send pacer: one row holding the next free slot index.
//! Slots are a fixed lattice in time (see `outbox::pacer`), so reserving one is
//! a single atomic `UPDATE ... RETURNING` that all processes share.

use super::Store;

impl Store {
    /// Reserves the next slot at or after `now_index`. With `horizon`, only when
    /// that slot is at most `horizon` slots ahead (campaign traffic does not queue
    /// far ahead, so a transactional email can always take a near slot).
    /// With `share = (cycle, allowed)`, only a slot `j` with `j % cycle < allowed`
    /// (the others are left for transactional mail).
    pub async fn reserve_send_slot(
        &self,
        now_index: i64,
        horizon: Option<i64>,
        share: Option<(i64, i64)>,
    ) -> Result<Option<i64>, sqlx::Error> {
        let (cycle, allowed) = share.unwrap_or((1, 1));
        sqlx::query_scalar(
            "UPDATE send_pacer SET next_index = CASE WHEN next_index > $1 THEN next_index ELSE $1 END + 1 \
             WHERE id = 1 AND ($2 < 0 OR next_index <= $1 + $2) \
               AND (CASE WHEN next_index > $1 THEN next_index ELSE $1 END) % $3 < $4 \
             RETURNING next_index - 1",
        )
        .bind(now_index)
        .bind(horizon.unwrap_or(-1))
        .bind(cycle)
        .bind(allowed)
        .fetch_optional(&self.pool)
        .await
    }

    /// Whether transactional mail is queued and due (any process's).
    pub async fn transactional_queued(&self) -> Result<bool, sqlx::Error> {
        let hit: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM messages WHERE status = 'queued' AND priority = 0 AND due_at <= $1 LIMIT 1",
        )
        .bind(crate::domain::now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(hit.is_some())
    }

    /// Moves the next free slot to at least `index` (after the provider said to wait).
    pub async fn push_send_slots(&self, index: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE send_pacer SET next_index = $1 WHERE id = 1 AND next_index < $1")
            .bind(index)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}
