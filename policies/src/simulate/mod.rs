//! `tierd simulate`: what a placement policy would cost and how fast reads would be, before anything moves.
//!
//! The simulation replays a [`Workload`] (generated, or a recorded access log) through each [`Scenario`] on a
//! simulated clock, at segment granularity: a (project, day) becomes one to four segments when it is sealed, and
//! from then on the simulated store tracks each segment's placement, storage class, codec, bytes, heat (an
//! exponentially decayed rate of the simulated reads) and residency (`placed_at_ms`). Every `tick_ms` (an hour)
//! it bills storage for the tick, applies the tick's writes and reads in time order, then asks the scenario for
//! its actions on a snapshot of the store, exactly the [`SegmentStats`](crate::SegmentStats) the daemon would feed
//! the planner, and applies every one of them.
//!
//! The figures cover the measured window only: a generated workload starts with `history_days` of ingest and reads
//! ([`WorkloadParams::history_days`]) that every scenario runs through, with the same planners, before the counting
//! starts at [`Workload::measure_from_ms`], so that each scenario is measured on a store it has been running, not
//! on an empty one.
//!
//! Pure and deterministic: no clock, no I/O (the daemon reads the access log and prints the [`Report`]); the same
//! workload and configuration give the same report.
//!
//! What each read costs and how long it takes: reads of a segment with a hot copy come from the hot disk; reads of
//! a cold-only segment come from the cache of cold blocks when it holds them, else from the object store (GETs
//! per 1 MiB block, retrieval by storage class), and fill the cache. Latency follows [`LatencyModel`]; dollars
//! follow [`Prices`] (storage per GiB-month integrated over the run, moves, rewrites and reads); codec sizes
//! follow [`codec`], measured figures.
//!
//! Files: `workload` (types and the generator), `accesslog` (the recorded format), `codec` (sizes per codec),
//! `latency` (the latency model), `state` (the simulated store and its bill), `scenario` (the policies compared),
//! this module (the clock loop and the report).

pub mod accesslog;
pub mod codec;
pub mod latency;
pub mod scenario;
mod state;
#[cfg(test)]
mod tests;
pub mod workload;

use serde::{Deserialize, Serialize};

use crate::cost::{Prices, StorageClass};
use crate::error::PolicyError;

pub use accesslog::AccessLogError;
pub use latency::LatencyModel;
pub use scenario::{AgeOnly, Scenario, TierdPolicy};
pub use workload::{generate, Read, Workload, WorkloadParams, Write};

use state::SimStore;

/// How the simulation runs (`[simulate]` in the daemon's config, all optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Planning interval of the simulated clock. Default one hour.
    pub tick_ms: i64,
    /// Half-life of the simulated heat. Default (absent): the daemon's own, `[heat] half_life_secs` (7 days unless
    /// configured), so that the planner sees the heat it would see in the daemon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heat_half_life_ms: Option<i64>,
    /// Bound of the simulated cache of cold blocks. Default 1 GiB; the daemon takes `cache.max_bytes`.
    #[serde(skip)]
    pub cache_max_bytes: u64,
    /// The codec data is sealed with (the re-encode codec). Default lz4; the daemon takes `passes.reencode.codec`.
    #[serde(skip)]
    pub ingest_codec: String,
    /// What a simulation may hold in memory, in bytes (estimated from the generated workload's parameters before it
    /// is generated; an access log's file size): a run that would need more is refused, naming this key. Default
    /// 2 GiB.
    pub max_workload_bytes: u64,
    pub latency: LatencyModel,
    pub age_only: AgeOnly,
    pub workload: WorkloadParams,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tick_ms: 3_600_000,
            heat_half_life_ms: None,
            cache_max_bytes: 1 << 30,
            ingest_codec: "lz4".into(),
            max_workload_bytes: 2 << 30,
            latency: LatencyModel::default(),
            age_only: AgeOnly::default(),
            workload: WorkloadParams::default(),
        }
    }
}

/// The daemon's default heat half-life (`[heat] half_life_secs`), the simulation's when none is given.
pub const DEFAULT_HEAT_HALF_LIFE_MS: i64 = 7 * workload::DAY_MS;

impl SimConfig {
    /// The heat half-life the simulation runs with.
    pub fn half_life_ms(&self) -> i64 {
        self.heat_half_life_ms.unwrap_or(DEFAULT_HEAT_HALF_LIFE_MS)
    }

    pub fn validate(&self) -> Result<(), PolicyError> {
        const P: &str = "simulate";
        PolicyError::require(self.tick_ms > 0, P, "tick_ms", || "is not positive".into())?;
        PolicyError::require(self.half_life_ms() > 0, P, "heat_half_life_ms", || "is not positive".into())?;
        codec::bytes_per_event(&self.ingest_codec)?;
        self.latency.validate()?;
        self.workload.validate()
    }

    /// Whether the generated workload fits `max_workload_bytes` (estimated before generating it; an access log is
    /// bounded by its file size instead).
    pub fn check_generated_size(&self) -> Result<(), PolicyError> {
        const P: &str = "simulate";
        let (reads, segments) = self.workload.estimated_size();
        let need = reads.saturating_mul(READ_BYTES).saturating_add(segments.saturating_mul(SEGMENT_BYTES));
        PolicyError::require(need <= self.max_workload_bytes, P, "max_workload_bytes", || {
            format!(
                "is {}: the generated workload would hold about {reads} reads and {segments} segments, about {need} \
                 bytes; fewer days or reads, bigger segments, or a higher limit",
                self.max_workload_bytes
            )
        })
    }
}

/// Bytes one simulated read takes in memory, with its project name (an upper estimate).
pub const READ_BYTES: u64 = 96;
/// Bytes one simulated segment takes in memory, with its stats and heat (an upper estimate).
pub const SEGMENT_BYTES: u64 = 512;

/// One scenario's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub name: String,
    /// USD a month for the storage held at the end of the run.
    pub monthly_cost: f64,
    /// USD over the run: storage integrated over time + transitions + reads.
    pub total_cost: f64,
    pub storage_cost: f64,
    /// Moves and rewrites: PUTs, GETs, DELETEs, retrieval.
    pub transition_cost: f64,
    /// Cold reads of queries: GETs and retrieval.
    pub read_cost: f64,
    pub p50_read_ms: f64,
    pub p99_read_ms: f64,
    pub reads: u64,
    /// Segment reads by source.
    pub segment_reads_hot: u64,
    pub segment_reads_cache: u64,
    pub segment_reads_cold: u64,
    /// Bytes copied between the tiers.
    pub bytes_moved: u64,
    /// Bytes read by recompressions.
    pub bytes_rewritten: u64,
    /// Object-store requests: PUT + GET + DELETE.
    pub requests: u64,
    pub moves: u64,
    pub recompressions: u64,
    /// Bytes held at the end, by storage class.
    pub end_bytes_hot: u64,
    pub end_bytes_cold: u64,
    pub end_bytes_cold_infrequent: u64,
}

/// The whole report: `{"scenarios":[...], ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Measured days.
    pub days: f64,
    /// Days simulated before the measured window and left out of the figures.
    pub history_days: f64,
    pub segments: usize,
    /// Reads in the measured window.
    pub reads: usize,
    /// Reads of a (project, day) not sealed (or not known) at the time: left out of every figure.
    pub unserved_reads: u64,
    pub scenarios: Vec<ScenarioReport>,
}

/// Replays `workload` through `scenario`.
pub fn run(
    workload: &Workload,
    scenario: &Scenario,
    config: &SimConfig,
    prices: &Prices,
) -> Result<(ScenarioReport, u64, usize), PolicyError> {
    let mut store = SimStore::new(
        prices,
        &config.latency,
        &config.ingest_codec,
        config.half_life_ms(),
        config.cache_max_bytes,
        config.workload.segment_max_bytes,
    );
    let (mut w, mut r) = (0, 0);
    let mut now = workload.start_ms;
    let mut measuring = false;
    while now < workload.end_ms {
        if !measuring && now >= workload.measure_from_ms {
            // The history is over: count from here, on the store the scenario has been running.
            store.tally = state::Tally::default();
            measuring = true;
        }
        let next = (now + config.tick_ms).min(workload.end_ms);
        store.bill_storage(next - now);
        // This tick's writes and reads, in time order, a write before a read at the same time.
        loop {
            let wt = workload.writes.get(w).map(|x| x.time_ms).filter(|&t| t <= next);
            let rt = workload.reads.get(r).map(|x| x.time_ms).filter(|&t| t <= next);
            match (wt, rt) {
                (Some(a), Some(b)) if a <= b => {
                    store.write(&workload.writes[w]);
                    w += 1;
                }
                (Some(_), None) => {
                    store.write(&workload.writes[w]);
                    w += 1;
                }
                (_, Some(_)) => {
                    let read = &workload.reads[r];
                    for seg in store.read(read) {
                        if let Some(action) = scenario.on_read(&store, seg) {
                            store.apply(read.time_ms, &action)?;
                        }
                    }
                    r += 1;
                }
                (None, None) => break,
            }
        }
        scenario.step(&mut store, prices, next)?;
        now = next;
    }
    // Anything stamped at or after the end (a log's last write) still counts as a segment.
    for write in &workload.writes[w..] {
        store.write(write);
    }
    let t = &store.tally;
    let mut latencies = t.latencies_ms.clone();
    latencies.sort_by(f64::total_cmp);
    let by_class = store.bytes_by_class();
    let class = |c: StorageClass| by_class.iter().find(|(k, _)| *k == c).map_or(0, |(_, b)| *b);
    let report = ScenarioReport {
        name: scenario.name().to_owned(),
        monthly_cost: store.monthly_storage(),
        total_cost: t.storage_cost + t.transition_cost + t.read_cost,
        storage_cost: t.storage_cost,
        transition_cost: t.transition_cost,
        read_cost: t.read_cost,
        p50_read_ms: latency::percentile(&latencies, 0.5),
        p99_read_ms: latency::percentile(&latencies, 0.99),
        reads: latencies.len() as u64,
        segment_reads_hot: t.reads_hot,
        segment_reads_cache: t.reads_cache,
        segment_reads_cold: t.reads_cold,
        bytes_moved: t.bytes_moved,
        bytes_rewritten: t.bytes_rewritten,
        requests: t.puts + t.gets + t.deletes,
        moves: t.moves,
        recompressions: t.recompressions,
        end_bytes_hot: class(StorageClass::Hot),
        end_bytes_cold: class(StorageClass::Cold),
        end_bytes_cold_infrequent: class(StorageClass::ColdInfrequent),
    };
    Ok((report, t.unserved_reads, store.segments.len()))
}

/// Replays `workload` through every scenario, side by side.
pub fn simulate(
    workload: &Workload,
    scenarios: &[Scenario],
    config: &SimConfig,
    prices: &Prices,
) -> Result<Report, PolicyError> {
    config.validate()?;
    prices.validate()?;
    let mut out = Report {
        days: (workload.end_ms - workload.measure_from_ms) as f64 / workload::DAY_MS as f64,
        history_days: (workload.measure_from_ms - workload.start_ms) as f64 / workload::DAY_MS as f64,
        segments: 0,
        reads: workload.reads.iter().filter(|r| r.time_ms >= workload.measure_from_ms).count(),
        unserved_reads: 0,
        scenarios: Vec::new(),
    };
    for scenario in scenarios {
        let (report, unserved, segments) = run(workload, scenario, config, prices)?;
        out.unserved_reads = unserved;
        out.segments = segments;
        out.scenarios.push(report);
    }
    Ok(out)
}
