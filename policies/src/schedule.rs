//! When a background pass runs: a cron expression (the `cron` crate, seconds field first, 6 or 7 fields; `""`
//! disables the pass), the next fire time after a given `now_ms`, and a jitter that spreads passes (and nodes) that
//! share a schedule.
//!
//! Pure, like the rest of the crate: the daemon's scheduler reads its clock and sleeps; this module only answers
//! "given now, when next". The jitter is deterministic (a hash of the pass name and the fire time), so a schedule is
//! reproducible in tests and in `tierd status`, and it is bounded by a tenth of the interval between fire times, so
//! an "every second" schedule still runs every second and a jittered run never reaches the following fire time.

use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::error::PolicyError;

/// A parsed pass schedule. [`Schedule::disabled`] (the expression `""`) never fires.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    cron: Option<cron::Schedule>,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

/// One planned run: the cron fire time and, `jitter_ms` later, when the run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextRun {
    pub fire_ms: i64,
    pub jitter_ms: i64,
}

impl NextRun {
    /// When the run starts: the fire time plus its jitter.
    pub fn at_ms(&self) -> i64 {
        self.fire_ms.saturating_add(self.jitter_ms)
    }
}

impl Schedule {
    /// Parses `expression` (the value of config key `key`, named in the error). `""` (or only blanks) disables.
    pub fn parse(key: &str, expression: &str) -> Result<Self, PolicyError> {
        let trimmed = expression.trim();
        if trimmed.is_empty() {
            return Ok(Self::disabled());
        }
        let fields = trimmed.split_whitespace().count();
        let invalid = |problem: String| PolicyError::InvalidSchedule {
            key: key.to_string(),
            expression: expression.to_string(),
            problem,
        };
        if !(6..=7).contains(&fields) {
            return Err(invalid(format!(
                "has {fields} fields; give 6 or 7 (sec min hour day-of-month month day-of-week [year]), e.g. \
                 \"0 */5 * * * *\" for every 5 minutes, or \"\" to disable"
            )));
        }
        let cron = cron::Schedule::from_str(trimmed).map_err(|e| invalid(e.to_string()))?;
        // An expression that can never fire (February 30th) is a mistake, not a way to disable. (One whose years
        // are all past is only found by the scheduler, which reads the clock: it logs it and stops that pass.)
        if cron.after(&epoch()).next().is_none() {
            return Err(invalid("never fires; use \"\" to disable a pass".into()));
        }
        Ok(Self { expression: trimmed.to_string(), cron: Some(cron) })
    }

    /// The schedule that never fires.
    pub fn disabled() -> Self {
        Self { expression: String::new(), cron: None }
    }

    pub fn is_enabled(&self) -> bool {
        self.cron.is_some()
    }

    /// The expression as configured (trimmed); `""` when disabled.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first fire time strictly after `now_ms` (fire times are whole seconds); `None` when disabled or when
    /// the expression has no fire time left.
    pub fn next_fire_after(&self, now_ms: i64) -> Option<i64> {
        let cron = self.cron.as_ref()?;
        let now = DateTime::<Utc>::from_timestamp_millis(now_ms)?;
        cron.after(&now).next().map(|t| t.timestamp_millis())
    }

    /// Whether `ms` is one of the expression's fire times.
    pub fn fires_at(&self, ms: i64) -> bool {
        let Some(cron) = &self.cron else { return false };
        ms.rem_euclid(1000) == 0 && DateTime::<Utc>::from_timestamp_millis(ms).is_some_and(|t| cron.includes(t))
    }

    /// The next run of pass `pass` after `now_ms`: the next fire time and its jitter, at most
    /// min(`max_jitter_ms`, a tenth of the gap to the following fire time), so the run starts before that one.
    pub fn next_run(&self, pass: &str, now_ms: i64, max_jitter_ms: i64) -> Option<NextRun> {
        let fire_ms = self.next_fire_after(now_ms)?;
        let bound = match self.next_fire_after(fire_ms) {
            Some(following) => max_jitter_ms.min((following - fire_ms) / 10),
            None => 0,
        };
        Some(NextRun { fire_ms, jitter_ms: jitter_ms(pass, fire_ms, bound) })
    }
}

/// A deterministic jitter in `0..bound_ms` (0 when `bound_ms <= 0`) derived from the pass name and the fire time:
/// passes sharing an expression start at different moments, and each fire of one pass gets its own offset.
pub fn jitter_ms(pass: &str, fire_ms: i64, bound_ms: i64) -> i64 {
    if bound_ms <= 0 {
        return 0;
    }
    // FNV-1a over the name and the fire time, then SplitMix64's finalizer to spread the low bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pass.as_bytes().iter().chain(fire_ms.to_le_bytes().iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h % bound_ms as u64) as i64
}

fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(0).expect("the epoch is a valid time")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn empty_disables_and_bad_expressions_name_the_key() {
        let s = Schedule::parse("passes.gc.schedule", "  ").unwrap();
        assert!(!s.is_enabled());
        assert_eq!(s.next_fire_after(0), None);
        assert_eq!(s.next_run("gc", 0, 1000), None);
        for bad in ["*/5 * * * *", "0 0 0 0 0 0 0 0", "61 * * * * *", "0 0 0 30 2 *", "hourly"] {
            let e = Schedule::parse("passes.gc.schedule", bad).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("passes.gc.schedule") && text.contains(bad), "{bad}: {text}");
        }
    }

    #[test]
    fn every_second_fires_every_second_with_no_jitter_room_beyond_a_tenth() {
        let s = Schedule::parse("k", "* * * * * *").unwrap();
        assert_eq!(s.next_fire_after(10_000), Some(11_000), "strictly after a whole second");
        assert_eq!(s.next_fire_after(10_500), Some(11_000));
        let run = s.next_run("reencode", 10_500, 30_000).unwrap();
        assert_eq!(run.fire_ms, 11_000);
        assert!((0..100).contains(&run.jitter_ms), "{run:?}");
    }

    #[test]
    fn daily_at_midnight_and_jitter_is_deterministic_and_differs_by_pass() {
        let s = Schedule::parse("k", "0 0 0 * * *").unwrap();
        assert_eq!(s.next_fire_after(3 * DAY + 5), Some(4 * DAY));
        assert!(s.fires_at(4 * DAY) && !s.fires_at(4 * DAY + 1000));
        let a = s.next_run("gc", 3 * DAY, 60_000).unwrap();
        assert_eq!(a, s.next_run("gc", 3 * DAY, 60_000).unwrap(), "same inputs, same jitter");
        let spread: std::collections::BTreeSet<i64> =
            ["gc", "migrate", "promote", "compact", "reencode"].iter().map(|p| jitter_ms(p, 4 * DAY, 60_000)).collect();
        assert!(spread.len() >= 4, "passes sharing an expression start apart: {spread:?}");
    }

    /// Expressions of the shapes operators write: every N seconds/minutes/hours, fixed times, lists, ranges.
    fn expression() -> impl Strategy<Value = String> {
        prop_oneof![
            (1u32..60).prop_map(|n| format!("*/{n} * * * * *")),
            (0u32..60, 1u32..60).prop_map(|(s, n)| format!("{s} */{n} * * * *")),
            (0u32..60, 0u32..60, 1u32..24).prop_map(|(s, m, n)| format!("{s} {m} */{n} * * *")),
            (0u32..60, 0u32..60, 0u32..24).prop_map(|(s, m, h)| format!("{s} {m} {h} * * *")),
            (0u32..30, 30u32..60).prop_map(|(a, b)| format!("{a},{b} * * * * *")),
            (0u32..24, 1u32..8).prop_map(|(h, d)| format!("0 0 {h} * * {d}")),
            (1u32..29).prop_map(|d| format!("0 30 2 {d} * * *")),
        ]
    }

    proptest! {
        #[test]
        fn next_is_a_later_fire_time_and_nothing_fires_in_between(
            expr in expression(),
            now in 0i64..4_000_000_000_000,
            pass in "[a-z]{1,10}",
            max_jitter in 0i64..600_000,
        ) {
            let s = Schedule::parse("k", &expr).unwrap();
            let next = s.next_fire_after(now).unwrap();
            prop_assert!(next > now);
            prop_assert!(s.fires_at(next), "{} is not a fire time of {}", next, expr);
            // No fire time is skipped: none in (now, next), checked second by second over short gaps.
            if next - now <= 120_000 {
                let mut t = (now / 1000 + 1) * 1000;
                while t < next {
                    prop_assert!(!s.fires_at(t), "{} fires at {} before {}", expr, t, next);
                    t += 1000;
                }
            }
            let run = s.next_run(&pass, now, max_jitter).unwrap();
            prop_assert_eq!(run.fire_ms, next);
            let following = s.next_fire_after(next).unwrap();
            prop_assert!(run.jitter_ms >= 0);
            prop_assert!(run.jitter_ms <= max_jitter);
            prop_assert!(run.jitter_ms <= (following - next) / 10, "jitter reaches into the next interval");
            prop_assert!(run.at_ms() < following);
        }

        #[test]
        fn jitter_stays_in_its_bound(pass in ".{0,20}", fire in any::<i64>(), bound in -5i64..10_000_000) {
            let j = jitter_ms(&pass, fire, bound);
            prop_assert!(j >= 0);
            prop_assert!(j < bound.max(1));
            prop_assert_eq!(j, jitter_ms(&pass, fire, bound));
        }
    }
}
