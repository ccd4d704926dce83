//! Which object-store errors are worth retrying, and how long to wait before the next attempt.
//!
//! Transient: object_store's `Generic` errors, which carry server errors (5xx, throttling), timeouts, connection
//! and body errors, and injected faults; and a failed background task (`JoinError`). Everything else (not found,
//! already exists, precondition, permission, bad path, unsupported) is an answer, not an accident.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub(crate) fn is_transient(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::Generic { .. } | object_store::Error::JoinError { .. })
}

/// Exponential backoff with jitter: attempt `n` (1-based) waits between half and all of `base * 2^(n-1)`, capped at
/// `100 * base`.
#[derive(Debug)]
pub(crate) struct Backoff {
    base: Duration,
    jitter: AtomicU64,
}

impl Backoff {
    pub(crate) fn new(base: Duration) -> Self {
        // Any varying seed will do (jitter only spreads concurrent callers' retries apart): the standard library's
        // randomly keyed hasher gives one without reading the clock.
        let seed = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
        Self { base, jitter: AtomicU64::new(seed) }
    }

    pub(crate) fn delay(&self, retry: u32) -> Duration {
        let full = self.base.saturating_mul(1u32 << retry.saturating_sub(1).min(16)).min(self.base * 100);
        let n = self.jitter.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        let mut z = n;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let fraction = 0.5 + 0.5 * ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64;
        full.mul_f64(fraction)
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
