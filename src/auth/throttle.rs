//! Throttling of failed authentication, shared by every request of a process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::ApiError;

/// Failed authentications per presented key. A key that failed
/// [`AuthThrottle::MAX_FAILURES`] times within a minute is refused with 429
/// until the minute is over, without a database lookup: a misconfigured client
/// (or a revoked key in a retry loop) cannot keep the database busy.
#[derive(Clone, Default)]
pub struct AuthThrottle(Arc<Mutex<HashMap<String, (u32, Instant)>>>);

impl AuthThrottle {
    pub const MAX_FAILURES: u32 = 10;
    const WINDOW: Duration = Duration::from_secs(60);
    /// Keys remembered at most; the oldest windows are dropped past this.
    const CAPACITY: usize = 10_000;

    pub fn check(&self, key_hash: &str) -> Result<(), ApiError> {
        let failures = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(key_hash) {
            Some((count, since)) if *count >= Self::MAX_FAILURES && since.elapsed() < Self::WINDOW => {
                let wait = Self::WINDOW.saturating_sub(since.elapsed()).as_secs().max(1);
                Err(ApiError::TooManyRequests { retry_after_secs: wait })
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, key_hash: &str) {
        let mut failures = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= Self::CAPACITY {
            failures.retain(|_, (_, since)| since.elapsed() < Self::WINDOW);
        }
        let entry = failures.entry(key_hash.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= Self::WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}
