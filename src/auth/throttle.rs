//! Throttling of failed authentication, shared by every request of a process
//! (each process counts on its own: N processes allow N times as many tries).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::throttle_bucket;
use crate::error::ApiError;

/// Failed authentications, per presented key and per client address.
///
/// A key that failed [`AuthThrottle::MAX_FAILURES`] times within a minute is
/// refused with 429 until the minute is over, without a database lookup: a
/// misconfigured client (or a revoked key in a retry loop) cannot keep the
/// database busy. A client address from which [`AuthThrottle::MAX_CLIENT_FAILURES`]
/// wrong keys came within a minute is refused the same way, whatever key it
/// presents next, the right one included: otherwise a guesser trying a new
/// key each time would never be slowed, and a refusal that let the right key
/// through would tell it when it guessed right. Requests already signed in
/// (a dashboard session) are not affected.
#[derive(Clone, Default)]
pub struct AuthThrottle(Arc<Mutex<Failures>>);

#[derive(Default)]
struct Failures {
    keys: Windows,
    clients: Windows,
}

/// Failures per name within a fixed window that starts at the first.
#[derive(Default)]
struct Windows(HashMap<String, (u32, Instant)>);

impl Windows {
    /// Seconds to wait, when `name` reached `max` failures in its window.
    fn wait(&self, name: &str, max: u32) -> Option<u64> {
        match self.0.get(name) {
            Some((count, since)) if *count >= max && since.elapsed() < AuthThrottle::WINDOW => {
                Some(AuthThrottle::WINDOW.saturating_sub(since.elapsed()).as_secs().max(1))
            }
            _ => None,
        }
    }

    /// Counts a failure of `name`; its count in the window.
    fn fail(&mut self, name: &str) -> u32 {
        if self.0.len() >= AuthThrottle::CAPACITY {
            self.0.retain(|_, (_, since)| since.elapsed() < AuthThrottle::WINDOW);
        }
        let entry = self.0.entry(name.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= AuthThrottle::WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
        entry.0
    }
}

impl AuthThrottle {
    /// Failures of one key within the window.
    pub const MAX_FAILURES: u32 = 10;
    /// Failures from one client address (an IPv6 client: its /64) within the window.
    pub const MAX_CLIENT_FAILURES: u32 = 20;
    const WINDOW: Duration = Duration::from_secs(60);
    /// Keys (and addresses) remembered at most; the oldest windows are dropped past this.
    const CAPACITY: usize = 10_000;

    /// Refuses a key, or a client, that failed too often (429 with the seconds to wait).
    pub fn check(&self, key_hash: &str, client: Option<IpAddr>) -> Result<(), ApiError> {
        let failures = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let by_client = client.and_then(|ip| failures.clients.wait(&throttle_bucket(ip), Self::MAX_CLIENT_FAILURES));
        let by_key = failures.keys.wait(key_hash, Self::MAX_FAILURES);
        match by_client.max(by_key) {
            Some(wait) => Err(ApiError::TooManyRequests { retry_after_secs: wait }),
            None => Ok(()),
        }
    }

    /// Counts a wrong key, from `client` when known.
    pub fn failed(&self, key_hash: &str, client: Option<IpAddr>) {
        let mut failures = self.0.lock().unwrap_or_else(|p| p.into_inner());
        failures.keys.fail(key_hash);
        if let Some(ip) = client {
            if failures.clients.fail(&throttle_bucket(ip)) == Self::MAX_CLIENT_FAILURES {
                // Once per window: an operator whose proxy is not in
                // MAILROOM_TRUSTED_PROXIES sees the proxy's address here.
                tracing::warn!(client = %ip, "too many wrong keys from one client address: refused for a minute");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn many_different_wrong_keys_from_one_address_throttle_that_address_for_every_key() {
        let t = AuthThrottle::default();
        for i in 0..AuthThrottle::MAX_CLIENT_FAILURES {
            assert!(t.check(&format!("wrong{i}"), ip("203.0.113.5")).is_ok(), "try {i}");
            t.failed(&format!("wrong{i}"), ip("203.0.113.5"));
        }
        let refused = t.check("the-right-key", ip("203.0.113.5")).unwrap_err();
        assert!(matches!(refused, ApiError::TooManyRequests { retry_after_secs: 1..=60 }), "{refused:?}");
        assert!(t.check("the-right-key", ip("203.0.113.6")).is_ok(), "another client is not");
        assert!(t.check("the-right-key", None).is_ok(), "an unknown client is counted per key only");
    }

    #[test]
    fn a_key_that_keeps_failing_is_throttled_from_every_address() {
        let t = AuthThrottle::default();
        for i in 0..AuthThrottle::MAX_FAILURES {
            t.failed("revoked", ip(&format!("198.51.100.{i}")));
        }
        assert!(t.check("revoked", ip("192.0.2.1")).is_err());
        assert!(t.check("another", ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn an_ipv6_client_cannot_escape_by_changing_its_low_bits() {
        let t = AuthThrottle::default();
        for i in 0..AuthThrottle::MAX_CLIENT_FAILURES {
            t.failed(&format!("k{i}"), ip(&format!("2001:db8:0:1::{i:x}")));
        }
        assert!(t.check("k", ip("2001:db8:0:1:ffff::1")).is_err());
        assert!(t.check("k", ip("2001:db8:0:2::1")).is_ok());
    }
}
