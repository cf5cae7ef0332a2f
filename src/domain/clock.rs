//! The time as the store and the workers see it. In production it is the
//! system clock; a test moves it ahead (`advance`) to reach work that falls
//! due later — a retry's backoff, an expired lease, a delayed action — without
//! sleeping. Clones share one offset, so every part of one app sees one time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct Clock {
    ahead_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock, not moved.
    pub fn system() -> Self {
        Self::default()
    }

    /// Milliseconds since the Unix epoch, as this clock reads them.
    pub fn now_ms(&self) -> i64 {
        super::now_ms().saturating_add(self.ahead_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone of it) ahead by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ahead_ms.fetch_add(by, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_clock_reads_later_in_every_clone() {
        let clock = Clock::system();
        let clone = clock.clone();
        let before = clone.now_ms();
        clock.advance(Duration::from_secs(3600));
        assert!(clone.now_ms() >= before + 3_600_000);
    }
}
