//! Pacing provider requests to the account's rate, shared by every worker
//! process through the database.
//!
//! Slot `j` falls in second `j / rate` at offset `(j % rate) / rate`, plus a
//! small lead-in. Slots never cross a second boundary, so a provider that counts
//! requests per wall-clock second (Resend: 10 per second per team, no burst)
//! sees at most `rate` in any second, yet every slot of every second is usable.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::domain::now_ms;
use crate::store::Store;

#[derive(Clone, Debug)]
pub struct Pacer {
    /// The configured rate (`MAILROOM_SEND_RATE`); 0 means unpaced.
    configured: i64,
    /// The account's limit as the provider last stated it (`ratelimit-limit`); 0: not known yet.
    learned: Arc<AtomicI64>,
    /// Of every [`SHARE_CYCLE`] slots, how many campaign mail may book while
    /// transactional mail is waiting.
    campaign_slots: i64,
    /// Transactional batches in this process waiting for a slot.
    transactional_waiting: Arc<AtomicUsize>,
}

/// Slots over which the campaign share is applied.
const SHARE_CYCLE: i64 = 20;

/// How far ahead campaign traffic may book, in slots.
const CAMPAIGN_HORIZON: i64 = 1;

impl Pacer {
    /// `rate` requests per second (0: no pacing, for a local mock without limits);
    /// `campaign_share` of them at most for campaigns while transactional mail waits.
    pub fn new(rate: u32, campaign_share: f64) -> Self {
        let campaign_slots = ((campaign_share.clamp(0.05, 1.0) * SHARE_CYCLE as f64).round() as i64).max(1);
        Self {
            configured: i64::from(rate),
            learned: Arc::new(AtomicI64::new(0)),
            campaign_slots,
            transactional_waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.configured == 0
    }

    /// The rate in force: the configured one, never above what the account allows.
    pub fn rate(&self) -> i64 {
        match self.learned.load(Ordering::Relaxed) {
            0 => self.configured,
            limit => self.configured.min(limit),
        }
    }

    /// Records the account's limit from the provider's `ratelimit-limit` header.
    /// Some accounts allow as little as 2 requests/s: pacing follows the account,
    /// whatever `MAILROOM_SEND_RATE` says (said once in the log when it differs).
    pub fn learn_limit(&self, limit: u32) {
        let limit = i64::from(limit.max(1));
        let before = self.learned.swap(limit, Ordering::Relaxed);
        if before != limit && limit < self.configured {
            tracing::warn!(
                configured = self.configured,
                account_limit = limit,
                "MAILROOM_SEND_RATE is higher than the provider account allows; pacing at the account's limit"
            );
        }
    }

    /// When slot `j` starts, in microseconds since the epoch, at the rate in force.
    pub fn slot_us(&self, j: i64) -> i64 {
        Lattice(self.rate()).slot_us(j)
    }

    /// The first slot starting at or after `t_us`, at the rate in force.
    pub fn index_at(&self, t_us: i64) -> i64 {
        Lattice(self.rate()).index_at(t_us)
    }

    /// Waits for a send slot. Transactional mail books the next free slot;
    /// campaign mail books only near slots and otherwise waits its turn.
    /// Returns how long it waited.
    pub async fn wait_turn(&self, store: &Store, transactional: bool) -> anyhow::Result<Duration> {
        if self.is_unlimited() {
            return Ok(Duration::ZERO);
        }
        let started = std::time::Instant::now();
        let _waiting = transactional.then(|| WaitingGuard::new(&self.transactional_waiting));
        loop {
            let now_us = now_ms() * 1000;
            // While transactional mail waits (here, or queued for any process),
            // campaign mail leaves it a share of the slots.
            let share = !transactional
                && self.campaign_slots < SHARE_CYCLE
                && (self.transactional_waiting.load(Ordering::Relaxed) > 0 || store.transactional_queued().await?);
            if let Some(at_us) = self.try_book(store, now_us, transactional, share).await? {
                let wait = (at_us - now_ms() * 1000).max(0);
                tokio::time::sleep(Duration::from_micros(wait.unsigned_abs())).await;
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_micros((500_000 / self.rate()).unsigned_abs())).await;
        }
    }

    /// Books the first free slot at or after `now_us`, if this traffic may take
    /// it: campaign mail only a near slot, and while sharing only its share.
    /// The shared row holds a time, not a slot number, so processes pacing at
    /// different rates (one has just learned the account's lower limit) still
    /// agree on what is booked.
    async fn try_book(
        &self,
        store: &Store,
        now_us: i64,
        transactional: bool,
        share: bool,
    ) -> anyhow::Result<Option<i64>> {
        loop {
            // One rate for the whole computation: another task may learn a new limit meanwhile.
            let lattice = Lattice(self.rate());
            let next_us = store.next_send_time_us().await?;
            let j = lattice.index_at(next_us.max(now_us));
            if !transactional && j > lattice.index_at(now_us) + CAMPAIGN_HORIZON {
                return Ok(None);
            }
            if share && j.rem_euclid(SHARE_CYCLE) >= self.campaign_slots {
                return Ok(None);
            }
            let at = lattice.slot_us(j);
            if store.book_send_time_us(next_us, at + 1).await? {
                return Ok(Some(at));
            }
            // Another worker booked first: look again.
        }
    }

    /// After a 429 (or a spent quota): no slot before `retry_after_ms` from now.
    pub async fn hold_off(&self, store: &Store, retry_after_ms: u64) -> anyhow::Result<()> {
        if self.is_unlimited() {
            return Ok(());
        }
        let until = (now_ms() + i64::try_from(retry_after_ms).unwrap_or(60_000)) * 1000;
        let lattice = Lattice(self.rate());
        store.push_send_time_us(lattice.slot_us(lattice.index_at(until))).await?;
        Ok(())
    }
}

/// The slots of one rate: slot `j` falls in second `j / rate`, at offset
/// `(j % rate) / rate` plus a small lead-in.
#[derive(Clone, Copy)]
struct Lattice(i64);

impl Lattice {
    fn lead_in_us(self) -> i64 {
        (1_000_000 / self.0 / 2).min(5_000)
    }

    fn slot_us(self, j: i64) -> i64 {
        let rate = self.0;
        (j / rate) * 1_000_000 + (j % rate) * 1_000_000 / rate + self.lead_in_us()
    }

    fn index_at(self, t_us: i64) -> i64 {
        let rate = self.0;
        let second = t_us.div_euclid(1_000_000);
        let within = t_us.rem_euclid(1_000_000) - self.lead_in_us();
        if within <= 0 {
            return second * rate;
        }
        // ceil(within * rate / 1e6)
        let i = (within * rate + 999_999) / 1_000_000;
        let mut j = second * rate + i;
        while self.slot_us(j) < t_us {
            j += 1;
        }
        j
    }
}

/// Counts a transactional batch as waiting for as long as it lives.
struct WaitingGuard(Arc<AtomicUsize>);

impl WaitingGuard {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter.clone())
    }
}

impl Drop for WaitingGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_of_one_second_stay_inside_that_second() {
        for rate in [1, 3, 10, 7, 100, 1000] {
            let p = Pacer::new(rate, 0.8);
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
        let p = Pacer::new(10, 0.8);
        for t in [0i64, 1, 4_999, 5_000, 5_001, 99_999, 105_000, 905_001, 999_999, 1_000_000, 1_700_000_123_456] {
            let j = p.index_at(t);
            assert!(p.slot_us(j) >= t, "{t}");
            assert!(j == 0 || p.slot_us(j - 1) < t, "{t}: slot {j} is not the first");
        }
    }
}
