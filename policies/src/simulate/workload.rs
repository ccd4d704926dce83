//! The workload a simulation replays: what is ingested when, and which reads come when.
//!
//! A [`Workload`] is a time-ordered list of [`Write`]s (a (project, day) of data becoming a sealed segment) and
//! [`Read`]s (a query reading some bytes of a (project, day)). It comes from a recorded access log
//! ([`super::accesslog`]) or from [`generate`], a seeded, deterministic model of an analytics product:
//!
//! - **History**: the store does not start empty. `history_days` days of the same ingest and reads come before the
//!   `days` measured ones (the first measured day is `start_day`), so that every scenario starts the measured
//!   window in its steady state: without history, nothing in a 30-day window is ever 30 days idle and `age-only`
//!   (cold 30 days after the last access, colder at 90) would never move anything. The report counts only the
//!   measured window ([`Workload::measure_from_ms`]).
//! - **Ingest**: `projects` projects whose daily volume follows a Zipf law (rank `r` gets a share proportional to
//!   `1 / r^zipf_exponent` of `daily_bytes`, each day jittered by up to +-20 %). A day's data is sealed at the end
//!   of the day (the next midnight UTC): one write per (project, day), split by the simulator into segments of at
//!   most `segment_max_bytes` (at most 4 per (project, day)).
//! - **Routine reads**: `reads_per_day` reads a day at uniformly random times, of a project drawn by the same Zipf
//!   law (big projects are also the busy ones), of a sealed day whose age in days `a >= 1` is drawn with weight
//!   `exp(-(a - 1) / recency_days)`: reads are skewed to the last few days.
//! - **Month-end reports**: on the last day of each calendar month (UTC) in the window, between 06:00 and 12:00,
//!   every project re-reads each sealed day of that month `report_reads` times.
//! - **Incidents**: `incidents` times in the measured window (and as many per `days` days of history), at a random
//!   moment at least `incident_days + 7` days after the first generated day, one project
//!   (Zipf-drawn) re-reads a window of `incident_days` consecutive days that ended 7 to 21 days before,
//!   `incident_reads` reads spread over 6 hours.
//! - **Read sizes**: each read reads a fraction of its (project, day) drawn log-uniformly from
//!   `[read_fraction_min, read_fraction_max]` (a count reads two columns, a scan more).
//!
//! Bytes in a workload are bytes of the data as first stored: columnar segments in the ingest codec (lz4). The
//! simulator scales them by each segment's current codec ([`super::codec`]).

use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

pub(crate) const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// A (project, day) of data sealed at `time_ms`, `bytes` in the ingest codec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    pub time_ms: i64,
    pub project: String,
    /// UTC day, days since 1970-01-01.
    pub day: i32,
    pub bytes: u64,
}

/// A read of `bytes` (in the ingest codec) of one (project, day) at `time_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Read {
    pub time_ms: i64,
    pub project: String,
    pub day: i32,
    pub bytes: u64,
}

/// What a simulation replays; both lists sorted by time (stable: equal times keep their order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Workload {
    /// The simulated clock starts here (a midnight UTC)...
    pub start_ms: i64,
    /// ... the figures count from here on (the first tick at or after it; `start_ms` when there is no history)...
    pub measure_from_ms: i64,
    /// ... and stops here.
    pub end_ms: i64,
    pub writes: Vec<Write>,
    pub reads: Vec<Read>,
}

/// Parameters of [`generate`]; see the [module docs](self). `[simulate.workload]` in the daemon's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadParams {
    /// First measured day, days since 1970-01-01. Default 20758 (2026-11-01), so that a 30-day run ends on a
    /// month end.
    pub start_day: i32,
    /// Measured days. Default 30.
    pub days: u32,
    /// Days of ingest and reads simulated before `start_day` and left out of the figures. Default 90: the
    /// shortest history in which `age-only`'s data reaches both its thresholds (30 and 90 days after the last
    /// access) within the measured window, so that it is compared in its steady state, not on an empty store.
    pub history_days: u32,
    /// Default 20.
    pub projects: u32,
    /// Zipf exponent of project sizes and read popularity. Default 1.1.
    pub zipf_exponent: f64,
    /// Bytes ingested a day over all projects, in the ingest codec. Default 8 GiB.
    pub daily_bytes: u64,
    /// A (project, day) is split into segments of at most this many bytes, at most 4. Default 256 MiB.
    pub segment_max_bytes: u64,
    /// Routine reads a day. Default 2000.
    pub reads_per_day: u32,
    /// Mean extra age of a routine read's day, in days. Default 2.
    pub recency_days: f64,
    /// Reads of each day of the month by each project's month-end report. Default 3 (0 = no reports).
    pub report_reads: u32,
    /// Incidents in the window. Default 2.
    pub incidents: u32,
    /// Days an incident re-reads. Default 3.
    pub incident_days: u32,
    /// Reads an incident makes. Default 200.
    pub incident_reads: u32,
    /// Smallest fraction of a (project, day) one read reads. Default 0.01.
    pub read_fraction_min: f64,
    /// Largest. Default 0.3.
    pub read_fraction_max: f64,
}

impl Default for WorkloadParams {
    fn default() -> Self {
        WorkloadParams {
            start_day: 20_758,
            days: 30,
            history_days: 90,
            projects: 20,
            zipf_exponent: 1.1,
            daily_bytes: 8 << 30,
            segment_max_bytes: 256 << 20,
            reads_per_day: 2000,
            recency_days: 2.0,
            report_reads: 3,
            incidents: 2,
            incident_days: 3,
            incident_reads: 200,
            read_fraction_min: 0.01,
            read_fraction_max: 0.3,
        }
    }
}

const POLICY: &str = "simulate.workload";

impl WorkloadParams {
    /// Upper estimates of what generating this workload holds: (reads, segments), history included.
    pub fn estimated_size(&self) -> (u64, u64) {
        let total_days = u64::from(self.days).saturating_add(u64::from(self.history_days));
        let months = total_days.div_ceil(28) + 1;
        let routine = u64::from(self.reads_per_day).saturating_mul(total_days);
        let reports = (u64::from(self.projects) * 31 * u64::from(self.report_reads)).saturating_mul(months);
        let windows = total_days.div_ceil(u64::from(self.days.max(1))) + 1;
        let incidents = (u64::from(self.incidents) * u64::from(self.incident_days) * u64::from(self.incident_reads))
            .saturating_mul(windows);
        // At most 4 segments per (project, day) (see the module docs).
        let per_day = u64::from(self.projects) * 4;
        (routine.saturating_add(reports).saturating_add(incidents), total_days.saturating_mul(per_day))
    }

    pub fn validate(&self) -> Result<(), PolicyError> {
        PolicyError::require(self.days > 0, POLICY, "days", || "is zero: simulate at least one day".into())?;
        PolicyError::require(self.projects > 0, POLICY, "projects", || "is zero".into())?;
        PolicyError::require(
            self.zipf_exponent.is_finite() && self.zipf_exponent >= 0.0,
            POLICY,
            "zipf_exponent",
            || format!("is {}: give 0 (uniform) or more", self.zipf_exponent),
        )?;
        PolicyError::require(self.segment_max_bytes > 0, POLICY, "segment_max_bytes", || "is zero".into())?;
        PolicyError::require(self.recency_days.is_finite() && self.recency_days > 0.0, POLICY, "recency_days", || {
            format!("is {}: give a positive number of days", self.recency_days)
        })?;
        PolicyError::require(self.incident_days > 0, POLICY, "incident_days", || "is zero".into())?;
        let (lo, hi) = (self.read_fraction_min, self.read_fraction_max);
        PolicyError::require(lo > 0.0 && lo <= hi && hi <= 1.0, POLICY, "read_fraction_min", || {
            format!("is {lo} with read_fraction_max {hi}: give 0 < min <= max <= 1")
        })
    }
}

/// Project names: `p00`, `p01`, ... by rank (p00 the biggest).
pub fn project_name(rank: u32) -> String {
    format!("p{rank:02}")
}

/// Draws ranks 0.. with probability proportional to `1 / (rank + 1)^s`.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: u32, s: f64) -> Zipf {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|r| {
                total += f64::from(r).powf(-s);
                total
            })
            .collect();
        Zipf { cumulative }
    }

    fn weight(&self, rank: usize) -> f64 {
        let prev = if rank == 0 { 0.0 } else { self.cumulative[rank - 1] };
        (self.cumulative[rank] - prev) / self.cumulative[self.cumulative.len() - 1]
    }

    fn sample(&self, rng: &mut impl rand::Rng) -> usize {
        let x = rng.random::<f64>() * self.cumulative[self.cumulative.len() - 1];
        self.cumulative.partition_point(|&c| c <= x).min(self.cumulative.len() - 1)
    }
}

/// The generated workload for `params` and `seed`: the same inputs give the same workload, on every platform
/// (xoshiro256++, a fixed algorithm).
pub fn generate(params: &WorkloadParams, seed: u64) -> Result<Workload, PolicyError> {
    params.validate()?;
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let zipf = Zipf::new(params.projects, params.zipf_exponent);
    let first_day = params.start_day - i32::try_from(params.history_days).unwrap_or(i32::MAX);
    let start_ms = i64::from(first_day) * DAY_MS;
    let history = i64::from(params.history_days);
    let days = history + i64::from(params.days);
    let end_ms = start_ms + days * DAY_MS;
    let measure_from_ms = start_ms + history * DAY_MS;
    let day_ms = |d: i64| start_ms + d * DAY_MS;

    // sizes[d][p]: bytes of project p's day d.
    let mut sizes = vec![vec![0u64; params.projects as usize]; days as usize];
    let mut writes = Vec::new();
    for (d, row) in sizes.iter_mut().enumerate() {
        for (p, size) in row.iter_mut().enumerate() {
            let jitter = rng.random_range(0.8..=1.2);
            *size = (params.daily_bytes as f64 * zipf.weight(p) * jitter).round().max(1.0) as u64;
            // Sealed at the next midnight; the last day's data is sealed when the window ends.
            let day = first_day + d as i32;
            writes.push(Write { time_ms: day_ms(d as i64 + 1), project: project_name(p as u32), day, bytes: *size });
        }
    }
    let mut reads = Vec::new();
    let mut read = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus, time_ms: i64, p: usize, d: i64| {
        let (lo, hi) = (params.read_fraction_min.ln(), params.read_fraction_max.ln());
        let fraction = if hi > lo { rng.random_range(lo..hi).exp() } else { lo.exp() };
        let bytes = (sizes[d as usize][p] as f64 * fraction).round().max(1.0) as u64;
        reads.push(Read { time_ms, project: project_name(p as u32), day: first_day + d as i32, bytes });
    };

    // Routine reads of sealed days, skewed to recent ones.
    for today in 1..days {
        let ages: Vec<f64> = (1..=today).map(|a| (-((a - 1) as f64) / params.recency_days).exp()).collect();
        let total: f64 = ages.iter().sum();
        for _ in 0..params.reads_per_day {
            let time_ms = day_ms(today) + rng.random_range(0..DAY_MS);
            let mut x = rng.random::<f64>() * total;
            let mut age = ages.len();
            for (i, w) in ages.iter().enumerate() {
                if x < *w {
                    age = i + 1;
                    break;
                }
                x -= w;
            }
            let p = zipf.sample(&mut rng);
            read(&mut rng, time_ms, p, today - age as i64);
        }
    }

    // Month-end reports: on each month's last day in the window, re-read that month's sealed days.
    if params.report_reads > 0 {
        for today in 0..days {
            let day = first_day + today as i32;
            if civil_from_days(day + 1).2 != 1 {
                continue;
            }
            let first = (today - i64::from(civil_from_days(day).2) + 1).max(0);
            for p in 0..params.projects as usize {
                for d in first..today {
                    for _ in 0..params.report_reads {
                        let time_ms = day_ms(today) + 6 * HOUR_MS + rng.random_range(0..6 * HOUR_MS);
                        read(&mut rng, time_ms, p, d);
                    }
                }
            }
        }
    }

    // Incidents: one project re-reads a few days from one to three weeks back; `incidents` in the measured window,
    // and as many per `days` days of history in the history.
    let window = i64::from(params.incident_days);
    let in_history = (f64::from(params.incidents) * history as f64 / f64::from(params.days)).round() as u32;
    let spans = [(in_history, window + 7, history), (params.incidents, (window + 7).max(history), days)];
    for (n, lo, hi) in spans {
        for _ in 0..n {
            if hi <= lo {
                break;
            }
            let today = rng.random_range(lo..hi);
            let p = zipf.sample(&mut rng);
            let last = today - rng.random_range(7..=21).min(today);
            let first = (last - window + 1).max(0);
            let at = day_ms(today) + rng.random_range(0..DAY_MS - 6 * HOUR_MS);
            for _ in 0..params.incident_reads {
                let d = rng.random_range(first..=last);
                let time_ms = at + rng.random_range(0..6 * HOUR_MS);
                read(&mut rng, time_ms, p, d);
            }
        }
    }

    writes.sort_by_key(|w| w.time_ms);
    reads.sort_by_key(|r| r.time_ms);
    Ok(Workload { start_ms, measure_from_ms, end_ms, writes, reads })
}

/// (year, month, day) of a day since 1970-01-01 (proleptic Gregorian; H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

/// Days since 1970-01-01 of a (year, month, day); `None` for a date that does not exist.
pub fn days_from_civil(y: i32, m: u32, d: u32) -> Option<i32> {
    if !(1..=12).contains(&m) || d == 0 || d > 31 {
        return None;
    }
    let yy = i64::from(y) - i64::from(m <= 2);
    let era = yy.div_euclid(400);
    let yoe = yy.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = i32::try_from(era * 146_097 + doe - 719_468).ok()?;
    // Reject 31 April and the like: the round trip must give the same date back.
    (civil_from_days(days) == (y, m, d)).then_some(days)
}
