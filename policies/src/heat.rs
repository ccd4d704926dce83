//! Read heat: how often a segment is read, as an exponentially decayed count.
//!
//! Every read of a segment adds to its [`Heat`]; the count then halves every half-life. A decayed count `C` kept
//! this way estimates a read rate: under a steady `r` reads per unit of time, `C` settles at `r / λ` with
//! `λ = ln 2 / half_life`, so `C · λ` is the rate (an exponentially weighted moving average of it). The same holds
//! for the bytes read beside the reads. The planners see the rates as `SegmentStats::heat` (reads per day) and
//! `SegmentStats::heat_bytes` (bytes per day).
//!
//! Why decay rather than a window: one value per segment (no per-read history), it merges exactly (two counts
//! decayed to the same instant add), a segment that stops being read cools on its own, and a crash loses only the
//! reads not yet persisted rather than corrupting a window. Pure: `now_ms` is an argument.

use serde::{Deserialize, Serialize};

use crate::PolicyError;

/// Milliseconds in a day: the unit of the rates.
pub const DAY_MS: f64 = 86_400_000.0;

/// The half-life of heat: after it, a count is worth half as much.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HalfLife {
    ms: i64,
}

impl HalfLife {
    /// A half-life of `ms` milliseconds; it must be positive.
    pub fn from_ms(ms: i64) -> Result<HalfLife, PolicyError> {
        PolicyError::require(ms > 0, "heat", "half_life_secs", || "must be positive (a half-life in seconds)".into())?;
        Ok(HalfLife { ms })
    }

    /// A half-life of `secs` seconds (positive, at most what fits in milliseconds).
    pub fn from_secs(secs: u64) -> Result<HalfLife, PolicyError> {
        let ms = i64::try_from(secs).ok().and_then(|s| s.checked_mul(1000)).unwrap_or(i64::MAX);
        HalfLife::from_ms(if secs == 0 { 0 } else { ms })
    }

    pub fn ms(self) -> i64 {
        self.ms
    }

    /// The decay rate λ = ln 2 / half-life, per millisecond.
    fn lambda(self) -> f64 {
        std::f64::consts::LN_2 / self.ms as f64
    }

    /// The factor a count keeps after `elapsed_ms` (1 for no or negative time: heat never grows by waiting).
    pub fn factor(self, elapsed_ms: i64) -> f64 {
        if elapsed_ms <= 0 {
            return 1.0;
        }
        (-(elapsed_ms as f64) * self.lambda()).exp()
    }
}

/// Decayed read and byte counts of one segment, as of `as_of_ms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Heat {
    /// Decayed number of reads (a lookup may count a fraction).
    pub reads: f64,
    /// Decayed number of bytes read.
    pub bytes: f64,
    /// When the counts were last brought up to date.
    pub as_of_ms: i64,
}

impl Heat {
    /// The counts as of `now_ms`. A `now_ms` before `as_of_ms` (a clock stepped back) decays nothing and keeps the
    /// later instant, so that heat never grows by going back in time.
    pub fn decayed(&self, now_ms: i64, half_life: HalfLife) -> Heat {
        if now_ms <= self.as_of_ms {
            return *self;
        }
        let f = half_life.factor(now_ms - self.as_of_ms);
        Heat { reads: self.reads * f, bytes: self.bytes * f, as_of_ms: now_ms }
    }

    /// Counts `reads` reads of `bytes` bytes at `now_ms` (negative or non-finite amounts count as 0).
    pub fn add(&mut self, now_ms: i64, reads: f64, bytes: f64, half_life: HalfLife) {
        let mut d = self.decayed(now_ms, half_life);
        d.reads += clean(reads);
        d.bytes += clean(bytes);
        *self = d;
    }

    /// Both heats together, as of the later of the two instants: what one segment would have if it had seen both
    /// segments' reads (the heat a rewrite's output inherits from its inputs).
    pub fn merged(&self, other: &Heat, half_life: HalfLife) -> Heat {
        let at = self.as_of_ms.max(other.as_of_ms);
        let (a, b) = (self.decayed(at, half_life), other.decayed(at, half_life));
        Heat { reads: a.reads + b.reads, bytes: a.bytes + b.bytes, as_of_ms: at }
    }

    /// This heat scaled by `share` (0..=1): a part of it handed to one of several outputs.
    pub fn scaled(&self, share: f64) -> Heat {
        let s = clean(share).min(1.0);
        Heat { reads: self.reads * s, bytes: self.bytes * s, as_of_ms: self.as_of_ms }
    }

    /// The estimated read rate at `now_ms`, in reads per day.
    pub fn reads_per_day(&self, now_ms: i64, half_life: HalfLife) -> f64 {
        self.decayed(now_ms, half_life).reads * half_life.lambda() * DAY_MS
    }

    /// The estimated rate of bytes read at `now_ms`, in bytes per day.
    pub fn bytes_per_day(&self, now_ms: i64, half_life: HalfLife) -> f64 {
        self.decayed(now_ms, half_life).bytes * half_life.lambda() * DAY_MS
    }
}

fn clean(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 {
        x
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 86_400_000;

    fn week() -> HalfLife {
        HalfLife::from_secs(7 * 86_400).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn a_zero_half_life_is_refused_by_name() {
        let e = HalfLife::from_secs(0).unwrap_err().to_string();
        assert!(e.contains("half_life_secs"), "{e}");
        assert!(HalfLife::from_ms(-5).is_err());
    }

    #[test]
    fn a_steady_rate_is_estimated_as_that_rate() {
        // 24 reads a day (one an hour) for ten half-lives: the estimate converges on 24/day from below.
        let hl = HalfLife::from_secs(86_400).unwrap();
        let mut h = Heat::default();
        let hour = DAY / 24;
        for i in 0..(24 * 10) {
            h.add(i * hour, 1.0, 100.0, hl);
        }
        let now = 24 * 10 * hour - hour;
        let rate = h.reads_per_day(now, hl);
        assert!(rate > 23.0 && rate < 25.5, "estimated {rate} reads/day for a steady 24/day");
        assert!(close(h.bytes_per_day(now, hl), rate * 100.0));
    }

    proptest! {
        #[test]
        fn decay_is_monotone(reads in 0.0f64..1e6, bytes in 0.0f64..1e12, start in 0i64..1_000_000_000,
                             d1 in 0i64..(100 * DAY), d2 in 0i64..(100 * DAY)) {
            let hl = week();
            let h = Heat { reads, bytes, as_of_ms: start };
            let (early, late) = (start + d1.min(d2), start + d1.max(d2));
            let (a, b) = (h.decayed(early, hl), h.decayed(late, hl));
            prop_assert!(b.reads <= a.reads && a.reads <= reads);
            prop_assert!(b.bytes <= a.bytes && a.bytes <= bytes);
            prop_assert!(h.reads_per_day(late, hl) <= h.reads_per_day(early, hl));
            // Going back in time changes nothing.
            prop_assert_eq!(h.decayed(start - d1, hl), h);
        }

        #[test]
        fn half_life_halves(reads in 0.0f64..1e6, bytes in 0.0f64..1e12, start in 0i64..1_000_000_000,
                            secs in 1u64..(365 * 86_400)) {
            let hl = HalfLife::from_secs(secs).unwrap();
            let h = Heat { reads, bytes, as_of_ms: start };
            let half = h.decayed(start + hl.ms(), hl);
            prop_assert!(close(half.reads, reads / 2.0), "{} vs {}", half.reads, reads / 2.0);
            prop_assert!(close(half.bytes, bytes / 2.0));
            let quarter = h.decayed(start + 2 * hl.ms(), hl);
            prop_assert!(close(quarter.reads, reads / 4.0));
        }

        #[test]
        fn merging_two_heats_equals_adding_their_reads(
            a_reads in proptest::collection::vec((0i64..(30 * DAY), 0.0f64..10.0, 0.0f64..1e6), 0..20),
            b_reads in proptest::collection::vec((0i64..(30 * DAY), 0.0f64..10.0, 0.0f64..1e6), 0..20),
            later in 0i64..(30 * DAY),
        ) {
            let hl = week();
            let feed = |reads: &[(i64, f64, f64)]| {
                let mut sorted = reads.to_vec();
                sorted.sort_by_key(|r| r.0);
                sorted
            };
            let (a_sorted, b_sorted) = (feed(&a_reads), feed(&b_reads));
            let mut a = Heat::default();
            for (t, r, b) in &a_sorted { a.add(*t, *r, *b, hl); }
            let mut b = Heat::default();
            for (t, r, by) in &b_sorted { b.add(*t, *r, *by, hl); }
            let mut both: Vec<_> = a_sorted.iter().chain(&b_sorted).copied().collect();
            both.sort_by_key(|r| r.0);
            let mut all = Heat::default();
            for (t, r, by) in &both { all.add(*t, *r, *by, hl); }
            let now = 30 * DAY + later;
            let merged = a.merged(&b, hl).decayed(now, hl);
            let direct = all.decayed(now, hl);
            prop_assert!(close(merged.reads, direct.reads), "{} vs {}", merged.reads, direct.reads);
            prop_assert!(close(merged.bytes, direct.bytes), "{} vs {}", merged.bytes, direct.bytes);
            prop_assert!(close(a.merged(&b, hl).reads, b.merged(&a, hl).reads));
        }

        #[test]
        fn adding_never_cools(reads in 0.0f64..1e3, extra in -5.0f64..5.0, t in 0i64..DAY, dt in 0i64..DAY) {
            let hl = week();
            let mut h = Heat { reads, bytes: 0.0, as_of_ms: t };
            let before = h.decayed(t + dt, hl);
            h.add(t + dt, extra, f64::NAN, hl);
            prop_assert!(h.reads >= before.reads);
            prop_assert!(h.bytes == 0.0);
        }
    }
}
