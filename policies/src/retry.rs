//! How long to wait before trying again: the one retry policy of tierd, used by the cold tier's object-store
//! requests (`store::cold`) and by `tierd import` re-sending a batch to a daemon that is busy or restarting.
//!
//! Pure: the time spent so far, the server's `Retry-After` and the random draw for jitter are inputs, so callers
//! own the clock and the randomness, and every decision can be tested exactly.

use std::time::Duration;

/// Exponential backoff with an optional jitter band, a cap, an optional deadline and the server's word
/// (`Retry-After`) taking precedence over the backoff.
///
/// Retry `n` (1-based) waits `first * 2^(n-1)`, at most `cap`; with jitter `j`, a random part of it: between
/// `(1 - j)` and all of that. A wait never runs past the deadline, so the last attempt happens at the deadline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// The wait before the first retry.
    pub first: Duration,
    /// The longest wait the backoff gives (a `Retry-After` may ask for longer).
    pub cap: Duration,
    /// The share of each backoff wait that is random, 0 to 1 (0: none; 0.5: between half and all of it). Spreads
    /// the retries of concurrent callers apart.
    pub jitter: f64,
    /// Give up once this much time has passed since the first attempt; `None`: the caller limits the attempts.
    pub give_up_after: Option<Duration>,
}

impl RetryPolicy {
    /// The backoff before retry `attempt` (1-based; 0 counts as 1) without jitter: `first * 2^(attempt-1)`, at
    /// most `cap`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.first.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(self.cap)
    }

    /// The wait before retry `attempt`, with `draw` (uniform in `[0, 1)`) placing it in the jitter band:
    /// `backoff * (1 - jitter + jitter * draw)`. Out-of-range or NaN inputs are clamped into their ranges.
    pub fn delay(&self, attempt: u32, draw: f64) -> Duration {
        let full = self.backoff(attempt);
        let jitter = unit(self.jitter);
        let factor = 1.0 - jitter + jitter * unit(draw);
        Duration::try_from_secs_f64(full.as_secs_f64() * factor).map_or(full, |d| d.min(full))
    }

    /// The wait before retry `attempt`, `elapsed` after the first attempt, given the server's `Retry-After` (which
    /// wins over the backoff and its cap); `None` once the deadline has passed. The wait is cut to end at the
    /// deadline.
    pub fn next_wait(
        &self,
        attempt: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        draw: f64,
    ) -> Option<Duration> {
        let wait = retry_after.unwrap_or_else(|| self.delay(attempt, draw));
        match self.give_up_after {
            None => Some(wait),
            Some(limit) => {
                let left = limit.checked_sub(elapsed).filter(|d| !d.is_zero())?;
                Some(wait.min(left))
            }
        }
    }
}

/// `x` clamped into `[0, 1]`, NaN as 0.
fn unit(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn policy(first_ms: u64, cap_ms: u64, jitter: f64, give_up_after: Option<Duration>) -> RetryPolicy {
        RetryPolicy {
            first: Duration::from_millis(first_ms),
            cap: Duration::from_millis(cap_ms),
            jitter,
            give_up_after,
        }
    }

    #[test]
    fn doubles_from_first_up_to_the_cap() {
        let p = policy(1000, 30_000, 0.0, None);
        let waits: Vec<u64> = (1..=7).map(|n| p.delay(n, 0.9).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(p.backoff(0), p.backoff(1));
        assert_eq!(policy(1000, u64::MAX, 0.0, None).backoff(u32::MAX), Duration::from_secs(1 << 16));
    }

    #[test]
    fn jitter_spreads_within_its_band() {
        let p = policy(100, 10_000, 0.5, None);
        assert_eq!(p.delay(3, 0.0), Duration::from_millis(200));
        assert_eq!(p.delay(3, 0.5), Duration::from_millis(300));
        assert!(p.delay(3, 0.999_999) <= Duration::from_millis(400));
        assert_eq!(p.delay(3, f64::NAN), Duration::from_millis(200));
        assert_eq!(p.delay(3, 7.0), Duration::from_millis(400));
    }

    #[test]
    fn retry_after_wins_over_the_cap_but_not_the_deadline() {
        let p = policy(1000, 30_000, 0.0, Some(Duration::from_secs(600)));
        let s = Duration::from_secs;
        assert_eq!(p.next_wait(1, s(0), Some(s(120)), 0.0), Some(s(120)));
        assert_eq!(p.next_wait(1, s(590), Some(s(120)), 0.0), Some(s(10)));
        assert_eq!(p.next_wait(1, s(600), None, 0.0), None);
        assert_eq!(policy(1000, 30_000, 0.0, None).next_wait(40, s(1 << 30), None, 0.0), Some(s(30)));
    }

    proptest! {
        #[test]
        fn waits_stay_in_the_band_and_grow_with_the_attempt(
            first_ms in 0u64..100_000,
            cap_ms in 0u64..10_000_000,
            jitter in 0.0f64..=1.0,
            draw in 0.0f64..1.0,
            attempt in 0u32..64,
        ) {
            let p = policy(first_ms, cap_ms, jitter, None);
            let full = p.backoff(attempt);
            prop_assert!(full <= p.cap);
            prop_assert!(p.backoff(attempt + 1) >= full);
            let d = p.delay(attempt, draw);
            prop_assert!(d <= full);
            // Float rounding may cost a nanosecond or so below the exact band.
            let low = full.mul_f64(1.0 - jitter);
            prop_assert!(d + Duration::from_nanos(2) >= low, "{d:?} < {low:?}");
        }

        #[test]
        fn no_wait_runs_past_the_deadline(
            limit_ms in 0u64..1_000_000,
            elapsed_ms in 0u64..2_000_000,
            retry_after_ms in proptest::option::of(0u64..10_000_000),
            attempt in 1u32..40,
            draw in 0.0f64..1.0,
        ) {
            let p = policy(250, 60_000, 0.3, Some(Duration::from_millis(limit_ms)));
            let elapsed = Duration::from_millis(elapsed_ms);
            let wait = p.next_wait(attempt, elapsed, retry_after_ms.map(Duration::from_millis), draw);
            match wait {
                None => prop_assert!(elapsed_ms >= limit_ms),
                Some(w) => {
                    prop_assert!(elapsed_ms < limit_ms);
                    prop_assert!(elapsed + w <= Duration::from_millis(limit_ms));
                    if let Some(ra) = retry_after_ms {
                        prop_assert_eq!(w, Duration::from_millis(ra.min(limit_ms - elapsed_ms)));
                    }
                }
            }
        }
    }
}
