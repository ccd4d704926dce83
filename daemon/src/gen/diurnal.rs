//! Where in the window the traffic falls: a daily curve (quiet at 08:00 UTC, busiest at 20:00 UTC) and quieter
//! weekends.
//!
//! The generator spends a fixed budget of events, so instead of a rate it needs the inverse of the cumulative
//! traffic: [`DiurnalClock::time_at`] maps "fraction of the window's events already started" to a timestamp. Sessions
//! started at `time_at(started / total)` fill the whole window, whatever the budget, and follow the curve.

const MS_PER_DAY: i64 = 86_400_000;
const BIN_MS: i64 = 10 * 60 * 1000;
const BINS_PER_DAY: i64 = MS_PER_DAY / BIN_MS;

/// The inverse cumulative traffic curve over `[start_ms, end_ms)`, in 10-minute bins.
#[derive(Clone, Debug)]
pub(crate) struct DiurnalClock {
    start_ms: i64,
    end_ms: i64,
    /// `cumulative[k]` is the traffic weight of bins `0..k`; one entry more than there are bins.
    cumulative: Vec<f64>,
}

/// Relative traffic at `ms` (epoch milliseconds, UTC): between 0.3 and 1.0 over a day, times 0.8 on weekends.
pub(crate) fn traffic_weight(ms: i64) -> f64 {
    let day = ms.div_euclid(MS_PER_DAY);
    let hour = ms.rem_euclid(MS_PER_DAY) as f64 / 3_600_000.0;
    // 1970-01-01 was a Thursday: weekday 0 = Sunday.
    let weekday = (day + 4).rem_euclid(7);
    let weekend = if weekday == 0 || weekday == 6 { 0.8 } else { 1.0 };
    let phase = (hour - 8.0) / 24.0 * std::f64::consts::TAU;
    let daily = 0.5 - 0.5 * phase.cos(); // 0 at 08:00, 1 at 20:00
    (0.3 + 0.7 * daily.powf(1.5)) * weekend
}

impl DiurnalClock {
    pub(crate) fn new(start_ms: i64, days: u32) -> Self {
        let bins = i64::from(days) * BINS_PER_DAY;
        let mut cumulative = Vec::with_capacity(bins as usize + 1);
        let mut total = 0.0;
        cumulative.push(total);
        for k in 0..bins {
            total += traffic_weight(start_ms + k * BIN_MS + BIN_MS / 2);
            cumulative.push(total);
        }
        Self { start_ms, end_ms: start_ms + bins * BIN_MS, cumulative }
    }

    /// The first millisecond after the window.
    pub(crate) fn end_ms(&self) -> i64 {
        self.end_ms
    }

    /// The time by which a fraction `q` (clamped to `[0, 1)`) of the window's traffic has happened; always inside
    /// the window and non-decreasing in `q`.
    pub(crate) fn time_at(&self, q: f64) -> i64 {
        let total = self.cumulative[self.cumulative.len() - 1];
        let target = q.clamp(0.0, 1.0) * total;
        let bins = self.cumulative.len() - 1;
        let k = self.cumulative.partition_point(|&c| c <= target).saturating_sub(1).min(bins - 1);
        let width = self.cumulative[k + 1] - self.cumulative[k];
        let frac = ((target - self.cumulative[k]) / width).clamp(0.0, 1.0);
        let t = self.start_ms + k as i64 * BIN_MS + (frac * BIN_MS as f64) as i64;
        t.min(self.end_ms - 1)
    }
}
