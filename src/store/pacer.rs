//! The account-wide send pacer: one row holding the next free slot index.
//! Slots are a fixed lattice in time (see `outbox::pacer`), so reserving one is
//! a single atomic `UPDATE ... RETURNING` that all processes share.

use super::Store;

impl Store {
    /// Reserves the next slot at or after `now_index`. With `horizon`, only when
    /// that slot is at most `horizon` slots ahead (campaign traffic does not queue
    /// far ahead, so a transactional email can always take a near slot).
    pub async fn reserve_send_slot(&self, now_index: i64, horizon: Option<i64>) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE send_pacer SET next_index = CASE WHEN next_index > $1 THEN next_index ELSE $1 END + 1 \
             WHERE id = 1 AND ($2 < 0 OR next_index <= $1 + $2) RETURNING next_index - 1",
        )
        .bind(now_index)
        .bind(horizon.unwrap_or(-1))
        .fetch_optional(&self.pool)
        .await
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
