//! Pacing provider requests to the account's rate, shared by every worker
//! process through the database.
//!
//! Slot `j` falls in second `j / rate` at offset `(j % rate) / rate`, plus a
//! small lead-in. Slots never cross a second boundary, so a provider that counts
//! requests per wall-clock second (Resend: 10 per second per team, no burst)
//! sees at most `rate` in any second, yet every slot of every second is usable.

use std::time::Duration;

use crate::domain::now_ms;
use crate::store::Store;

#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    rate: i64,
}

/// How far ahead campaign traffic may book, in slots.
const CAMPAIGN_HORIZON: i64 = 1;

impl Pacer {
    /// `rate` requests per second; 0 means no pacing (a local mock without limits).
    pub fn new(rate: u32) -> Self {
        Self { rate: i64::from(rate) }
    }

    pub fn is_unlimited(&self) -> bool {
        self.rate == 0
    }

    fn lead_in_us(&self) -> i64 {
        (1_000_000 / self.rate / 2).min(5_000)
    }

    /// When slot `j` starts, in microseconds since the epoch.
    pub fn slot_us(&self, j: i64) -> i64 {
        (j / self.rate) * 1_000_000 + (j % self.rate) * 1_000_000 / self.rate + self.lead_in_us()
    }

    /// The first slot starting at or after `t_us`.
    pub fn index_at(&self, t_us: i64) -> i64 {
        let second = t_us.div_euclid(1_000_000);
        let within = t_us.rem_euclid(1_000_000) - self.lead_in_us();
        if within <= 0 {
            return second * self.rate;
        }
        // ceil(within * rate / 1e6)
        let i = (within * self.rate + 999_999) / 1_000_000;
        let mut j = second * self.rate + i;
        while self.slot_us(j) < t_us {
            j += 1;
        }
        j
    }

    /// Waits for a send slot. Transactional mail books the next free slot;
    /// campaign mail books only near slots and otherwise waits its turn.
    /// Returns how long it waited.
    pub async fn wait_turn(&self, store: &Store, transactional: bool) -> anyhow::Result<Duration> {
        if self.is_unlimited() {
            return Ok(Duration::ZERO);
        }
        let started = std::time::Instant::now();
        let horizon = (!transactional).then_some(CAMPAIGN_HORIZON);
        loop {
            let now_us = now_ms() * 1000;
            if let Some(j) = store.reserve_send_slot(self.index_at(now_us), horizon).await? {
                let wait = (self.slot_us(j) - now_ms() * 1000).max(0);
                tokio::time::sleep(Duration::from_micros(wait.unsigned_abs())).await;
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_micros((500_000 / self.rate).unsigned_abs())).await;
        }
    }

    /// After a 429: no slot before `retry_after_ms` from now.
    pub async fn hold_off(&self, store: &Store, retry_after_ms: u64) -> anyhow::Result<()> {
        if self.is_unlimited() {
            return Ok(());
        }
        let until = (now_ms() + i64::try_from(retry_after_ms).unwrap_or(60_000)) * 1000;
        store.push_send_slots(self.index_at(until)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_of_one_second_stay_inside_that_second() {
        for rate in [1, 3, 10, 7, 100, 1000] {
            let p = Pacer::new(rate);
            let r = i64::from(rate);
            for second in [0i64, 5, 1_700_000_000] {
                for i in 0..r {
                    let t = p.slot_us(second * r + i);
                    assert_eq!(t.div_euclid(1_000_000), second, "rate {rate} slot {i}");
                }
            }
        }
    }

    #[test]
    fn index_at_finds_the_first_slot_not_before_a_time() {
        let p = Pacer::new(10);
        for t in [0i64, 1, 4_999, 5_000, 5_001, 99_999, 105_000, 905_001, 999_999, 1_000_000, 1_700_000_123_456] {
            let j = p.index_at(t);
            assert!(p.slot_us(j) >= t, "{t}");
            assert!(j == 0 || p.slot_us(j - 1) < t, "{t}: slot {j} is not the first");
        }
    }
}
