//! Which object-store errors are worth retrying, and how long to wait before the next attempt.
//!
//! Transient: object_store's `Generic` errors, which carry server errors (5xx, throttling), timeouts, connection
//! and body errors, and injected faults; and a failed background task (`JoinError`). Everything else (not found,
//! already exists, precondition, permission, bad path, unsupported) is an answer, not an accident.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tierd_policies::RetryPolicy;

pub(crate) fn is_transient(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::Generic { .. } | object_store::Error::JoinError { .. })
}

/// The object-store requests' backoff: the shared [`RetryPolicy`] (the request loop counts attempts against
/// `cold.max_retries`, so there is no deadline) with half of each wait random, so that concurrent requests that
/// failed together do not retry together. Attempt `n` (1-based) waits between half and all of `base * 2^(n-1)`,
/// capped at `100 * base`.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    /// Jitter draws: a randomly keyed hash (std's SipHash) of a counter. Any spread will do; nothing needs to be
    /// reproduced.
    keys: RandomState,
    draws: AtomicU64,
}

impl Backoff {
    pub(crate) fn new(base: Duration) -> Self {
        let policy = RetryPolicy { first: base, cap: base.saturating_mul(100), jitter: 0.5, give_up_after: None };
        Self { policy, keys: RandomState::new(), draws: AtomicU64::new(0) }
    }

    pub(crate) fn delay(&self, retry: u32) -> Duration {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        // The top 53 bits as a uniform draw in [0, 1).
        let draw = (self.keys.hash_one(n) >> 11) as f64 / (1u64 << 53) as f64;
        self.policy.delay(retry, draw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let b = Backoff::new(Duration::from_millis(100));
        for retry in 1..=12u32 {
            let full = Duration::from_millis(100 * (1u64 << (retry - 1))).min(Duration::from_secs(10));
            let d = b.delay(retry);
            assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?} not within [{:?}, {full:?}]", full / 2);
        }
        assert!(Backoff::new(Duration::ZERO).delay(3).is_zero());
        let spread: std::collections::HashSet<Duration> = (0..20).map(|_| b.delay(5)).collect();
        assert!(spread.len() > 1, "jitter spreads concurrent retries apart: {spread:?}");
    }

    #[test]
    fn only_accidents_are_transient() {
        let generic = object_store::Error::Generic { store: "S3", source: "503 Slow Down".into() };
        assert!(is_transient(&generic));
        let not_found = object_store::Error::NotFound { path: "k".into(), source: "404".into() };
        assert!(!is_transient(&not_found));
        let exists = object_store::Error::AlreadyExists { path: "k".into(), source: "412".into() };
        assert!(!is_transient(&exists));
    }
}
