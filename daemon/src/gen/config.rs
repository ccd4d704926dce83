//! What `tierd gen` generates: the [`GenConfig`] (size, window, seed, duplicate and late rates), the counts it
//! fixes before any event is drawn, and the checks that reject a configuration that cannot be generated.

use std::ops::Range;

pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;
/// 2026-01-01T00:00:00Z, the default start of the window.
pub const DEFAULT_START_MS: i64 = 1_767_225_600_000;
/// One user per this many events (bounded below and above by the two constants after it).
const EVENTS_PER_USER: u64 = 40;
const MIN_USERS: u64 = 10;
const MAX_USERS: u64 = 2_000_000;

/// What to generate. `events` counts every line written, duplicates included.
#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    pub events: u64,
    pub days: u32,
    pub seed: u64,
    /// Start of the window, epoch milliseconds (the CLI only accepts a UTC midnight).
    pub start_ms: i64,
    /// Fraction of lines that are re-sends of an earlier line, in `[0, 0.5]`.
    pub dup_rate: f64,
    /// Probability that an original event arrives late, in `[0, 1]`.
    pub late_rate: f64,
    /// Write the project token as `properties.token` (as Mixpanel's SDKs do); off for `--projects-free`.
    pub project_token: bool,
}

impl GenConfig {
    /// `events` lines over `days` days from [`DEFAULT_START_MS`], 2% duplicates, 1% late, with a project token.
    pub fn new(events: u64, days: u32, seed: u64) -> Self {
        Self { events, days, seed, start_ms: DEFAULT_START_MS, dup_rate: 0.02, late_rate: 0.01, project_token: true }
    }

    /// How many lines are duplicates: `floor(events * dup_rate)`, exactly.
    pub fn duplicate_events(&self) -> u64 {
        ((self.events as f64 * self.dup_rate).floor() as u64).min(self.events / 2)
    }

    /// How many distinct events (distinct `$insert_id`s) the stream holds, exactly: what a deduplicating store
    /// should count.
    pub fn unique_events(&self) -> u64 {
        self.events - self.duplicate_events()
    }

    /// The time window `[start, end)` every event's `time` falls in, epoch milliseconds.
    pub fn window(&self) -> Range<i64> {
        self.start_ms..self.start_ms + i64::from(self.days) * DAY_MS
    }

    /// Size of the user population (scales with `events`).
    pub fn user_count(&self) -> u64 {
        (self.events / EVENTS_PER_USER).clamp(MIN_USERS, MAX_USERS)
    }

    pub(crate) fn validate(&self) -> Result<(), GenConfigError> {
        if self.days == 0 {
            return Err(GenConfigError::NoDays);
        }
        if !(0.0..=0.5).contains(&self.dup_rate) {
            return Err(GenConfigError::DupRate(self.dup_rate));
        }
        if !(0.0..=1.0).contains(&self.late_rate) {
            return Err(GenConfigError::LateRate(self.late_rate));
        }
        if self.start_ms.checked_add(i64::from(self.days) * DAY_MS).is_none() {
            return Err(GenConfigError::StartOutOfRange(self.start_ms));
        }
        Ok(())
    }
}

/// A [`GenConfig`] that cannot be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenConfigError {
    #[error("--days must be at least 1")]
    NoDays,
    #[error("--dup-rate {0} is outside [0, 0.5]: at most every other line can be a re-send")]
    DupRate(f64),
    #[error("--late-rate {0} is outside [0, 1]")]
    LateRate(f64),
    #[error("start time {0} ms plus the window overflows")]
    StartOutOfRange(i64),
}
