//! The account-wide send pacer: one row holding the time the next send slot
//! may start, shared by every process. Slots follow a lattice in time (see
//! `outbox::pacer`); booking one is a compare-and-set on that time.

use super::Store;

impl Store {
    /// When the next send slot may start (epoch µs): the end of the last one booked.
    pub async fn next_send_time_us(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT next_us FROM send_pacer WHERE id = 1").fetch_one(&self.pool).await
    }

    /// Books up to `next_us` if nobody booked since `seen_us` was read
    /// (compare-and-set: exactly one of several racing workers wins).
    pub async fn book_send_time_us(&self, seen_us: i64, next_us: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("UPDATE send_pacer SET next_us = $2 WHERE id = 1 AND next_us = $1")
            .bind(seen_us)
            .bind(next_us)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether transactional mail is queued and due (any process's).
    pub async fn transactional_queued(&self) -> Result<bool, sqlx::Error> {
        let hit: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM messages WHERE status = 'queued' AND priority = 0 AND due_at <= $1 LIMIT 1",
        )
        .bind(self.now_ms())
        .fetch_optional(&self.pool)
        .await?;
        Ok(hit.is_some())
    }

    /// Moves the next free slot to at least `t_us` (after the provider said to wait).
    pub async fn push_send_time_us(&self, t_us: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE send_pacer SET next_us = $1 WHERE id = 1 AND next_us < $1")
            .bind(t_us)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}
