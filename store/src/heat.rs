//! The heat tracker: counts every read of a segment in memory and persists the counts in batches.
//!
//! Reads are counted where they happen (a query's scan, `GET /v1/segments/{id}`, a catalog lookup weighted by
//! [`HeatConfig::lookup_weight`]) with [`HeatTracker::record`]: one short lock of one of [`SHARDS`] maps, never a
//! catalog write. [`HeatTracker::flush`] (the scheduler's heat pass, the daemon's housekeeping and its shutdown)
//! writes the changed counts to the `heat` tree of the catalog's sled database in one batch and one fsync, and
//! reconciles them with the catalog:
//!
//! - a retired segment's heat moves to the segments that replaced it (`retired.replaced_by`, shared by their
//!   sizes), so that a rewrite does not make hot data look cold;
//! - a segment gone from the catalog (garbage collected) has its heat dropped, as has a count that decayed to
//!   nothing.
//!
//! The map is bounded by [`HeatConfig::max_tracked_segments`]: a read of a segment not yet tracked when the map is
//! full is refused and counted (`tierd_heat_refused_total`), never stored. A crash loses at most the reads since
//! the last flush, by design: heat is an estimate, and a lost batch only makes a segment look a little cooler.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tierd_policies::{HalfLife, Heat, SegmentStats};
use tracing::{debug, info, warn};

use crate::catalog::{CatalogSnapshot, SegmentState};
use crate::clock::{Clock, Stopwatch};
use crate::error::{Result, StoreError};
use crate::layout::SegmentId;
use crate::Catalog;

/// Number of independently locked maps: reads of different segments rarely wait on each other.
pub const SHARDS: usize = 16;

/// The sled tree of the catalog's database that holds the counts, by segment id.
const TREE: &str = "heat";

/// A count below this many (decayed) reads is dropped at flush: the segment is cold, and its slot is freed.
const COLD_READS: f64 = 1e-6;

/// How far a flush follows `replaced_by` (a segment compacted, then recompressed, before one flush).
const MAX_CARRY_HOPS: usize = 8;

/// Settings of the tracker (`[heat]` of the daemon's configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeatConfig {
    pub half_life: HalfLife,
    /// At most this many segments are tracked in memory (and persisted).
    pub max_tracked_segments: usize,
    /// What one catalog lookup returning a segment counts for, in reads.
    pub lookup_weight: f64,
}

impl Default for HeatConfig {
    fn default() -> Self {
        HeatConfig {
            half_life: HalfLife::from_secs(7 * 86_400).expect("positive"),
            max_tracked_segments: 100_000,
            lookup_weight: 0.1,
        }
    }
}

/// What kind of read is counted; the label of `tierd_heat_reads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSource {
    /// A query scanned the segment.
    Query,
    /// `GET /v1/segments/{id}` served it.
    SegmentGet,
    /// A catalog lookup returned it (weighted by [`HeatConfig::lookup_weight`]).
    Lookup,
}

impl ReadSource {
    pub fn label(self) -> &'static str {
        match self {
            ReadSource::Query => "query",
            ReadSource::SegmentGet => "segment_get",
            ReadSource::Lookup => "lookup",
        }
    }
}

/// One segment's heat as the API shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HeatView {
    pub reads_per_day: f64,
    pub bytes_per_day: f64,
    /// The last read counted (for a rewrite's output, its inputs' last read); `None`: never read.
    pub last_read_ms: Option<i64>,
}

/// One tracked segment, in memory and (as JSON) in the `heat` tree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Tracked {
    heat: Heat,
    last_read_ms: Option<i64>,
    /// Changed since the last flush (not persisted).
    #[serde(skip)]
    dirty: bool,
}

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Counts written.
    pub written: usize,
    /// Retired segments whose heat moved to their replacements.
    pub carried: usize,
    /// Counts dropped (segment gone from the catalog, retired without replacement, or cooled to nothing).
    pub dropped: usize,
    /// Segments tracked after the flush.
    pub tracked: usize,
}

/// Read heat of every segment, aggregated in memory, persisted in batches.
pub struct HeatTracker {
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    config: HeatConfig,
    tree: sled::Tree,
    shards: Vec<Mutex<HashMap<SegmentId, Tracked>>>,
    tracked: AtomicUsize,
    /// One flush at a time (the scheduler and shutdown may overlap).
    flushing: Mutex<()>,
}

impl std::fmt::Debug for HeatTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeatTracker").field("config", &self.config).field("tracked", &self.tracked()).finish()
    }
}

impl HeatTracker {
    /// Opens the tracker on the catalog's database and loads the persisted counts (at most
    /// `max_tracked_segments` of them; the rest are left out and counted as refused).
    pub fn open(catalog: Arc<Catalog>, clock: Arc<dyn Clock>, config: HeatConfig) -> Result<Self> {
        let tree = catalog.side_tree(TREE)?;
        let tracker = HeatTracker {
            catalog,
            clock,
            config,
            tree,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            tracked: AtomicUsize::new(0),
            flushing: Mutex::new(()),
        };
        let mut loaded = 0usize;
        let mut left_out = 0u64;
        for kv in tracker.tree.iter() {
            let (k, v) = kv.map_err(|source| StoreError::Catalog { op: "read heat", source })?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let Ok(id) = key.parse::<SegmentId>() else {
                warn!(key, "heat record with an invalid segment id; ignored");
                continue;
            };
            let t: Tracked = serde_json::from_slice(&v).map_err(|source| StoreError::CatalogDecode {
                what: "heat record",
                key,
                source,
            })?;
            if loaded >= config.max_tracked_segments {
                left_out += 1;
                continue;
            }
            tracker.shard(&id).lock().insert(id, t);
            loaded += 1;
        }
        tracker.tracked.store(loaded, Ordering::Relaxed);
        if left_out > 0 {
            warn!(left_out, max = config.max_tracked_segments, "more persisted heat than heat.max_tracked_segments");
            metrics::counter!("tierd_heat_refused_total").increment(left_out);
        }
        metrics::gauge!("tierd_heat_tracked_segments").set(loaded as f64);
        info!(tracked = loaded, "heat loaded");
        Ok(tracker)
    }

    pub fn config(&self) -> &HeatConfig {
        &self.config
    }

    /// Segments tracked now.
    pub fn tracked(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
    }

    fn shard(&self, id: &SegmentId) -> &Mutex<HashMap<SegmentId, Tracked>> {
        let mut h = DefaultHasher::new();
        id.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Counts one read of `id` that served `bytes` bytes (a lookup counts `lookup_weight` of a read, and its
    /// bytes). Returns false when the read was refused because the tracker is full.
    pub fn record(&self, id: SegmentId, source: ReadSource, bytes: u64) -> bool {
        let weight = match source {
            ReadSource::Lookup => self.config.lookup_weight,
            ReadSource::Query | ReadSource::SegmentGet => 1.0,
        };
        metrics::counter!("tierd_heat_reads_total", "source" => source.label()).increment(1);
        let counted = self.add(id, Heat { reads: weight, bytes: bytes as f64, as_of_ms: self.clock.now_ms() }, None);
        if !counted {
            debug!(segment = %id, source = source.label(), "heat tracker full; read not counted");
        }
        counted
    }

    /// Counts one read of each of `ids` (see [`HeatTracker::record`]).
    pub fn record_all(&self, ids: impl IntoIterator<Item = (SegmentId, u64)>, source: ReadSource) {
        for (id, bytes) in ids {
            self.record(id, source, bytes);
        }
    }

    /// Adds `heat` (counts at `heat.as_of_ms`) to `id`'s; `last_read_ms` defaults to `heat.as_of_ms`.
    fn add(&self, id: SegmentId, heat: Heat, last_read_ms: Option<i64>) -> bool {
        let last = last_read_ms.unwrap_or(heat.as_of_ms);
        let mut shard = self.shard(&id).lock();
        match shard.entry(id) {
            Entry::Occupied(mut e) => {
                let t = e.get_mut();
                t.heat = t.heat.merged(&heat, self.config.half_life);
                t.last_read_ms = Some(t.last_read_ms.map_or(last, |l| l.max(last)));
                t.dirty = true;
                true
            }
            Entry::Vacant(e) => {
                if self.tracked.fetch_add(1, Ordering::Relaxed) >= self.config.max_tracked_segments {
                    self.tracked.fetch_sub(1, Ordering::Relaxed);
                    metrics::counter!("tierd_heat_refused_total").increment(1);
                    return false;
                }
                e.insert(Tracked { heat, last_read_ms: Some(last), dirty: true });
                true
            }
        }
    }

    /// `id`'s heat at `now_ms` (zero and never read when it is not tracked).
    pub fn view(&self, id: &SegmentId, now_ms: i64) -> HeatView {
        let hl = self.config.half_life;
        match self.shard(id).lock().get(id) {
            Some(t) => HeatView {
                reads_per_day: t.heat.reads_per_day(now_ms, hl),
                bytes_per_day: t.heat.bytes_per_day(now_ms, hl),
                last_read_ms: t.last_read_ms,
            },
            None => HeatView::default(),
        }
    }

    /// Sets `heat` and `heat_bytes` of each planner input from the tracked counts, as of `now_ms`.
    pub fn annotate(&self, stats: &mut [SegmentStats], now_ms: i64) {
        for s in stats {
            let Ok(id) = s.id.parse::<SegmentId>() else { continue };
            let v = self.view(&id, now_ms);
            s.heat = v.reads_per_day;
            s.heat_bytes = v.bytes_per_day;
        }
    }

    /// Moves heat to where the catalog says it belongs and persists every changed count in one batch (one fsync).
    /// A retired segment's heat goes to its `replaced_by` segments (by their share of bytes); a segment the catalog
    /// no longer has, or one retired with no replacement, loses its heat; a count decayed to nothing is dropped.
    pub fn flush(&self) -> Result<FlushReport> {
        let _one = self.flushing.lock();
        // Below the catalog's headroom nothing is written: the counts stay in memory for a later flush.
        if let Err(e) = self.catalog.check_headroom("heat") {
            metrics::counter!("tierd_heat_flushes_total", "outcome" => "disk_full").increment(1);
            return Err(e);
        }
        let started = Stopwatch::start();
        let now = self.clock.now_ms();
        let snapshot = self.catalog.snapshot();
        let hl = self.config.half_life;
        let mut batch = sled::Batch::default();
        let mut report = FlushReport::default();
        let mut carries: Vec<(SegmentId, Tracked)> = Vec::new();
        for shard in &self.shards {
            let mut map = shard.lock();
            map.retain(|id, t| {
                let keep = match snapshot.get(id) {
                    None => false,
                    Some(m) if m.state == SegmentState::Retired => {
                        if m.retired.as_ref().is_some_and(|r| !r.replaced_by.is_empty()) {
                            carries.push((*id, *t));
                            report.carried += 1;
                        } else {
                            report.dropped += 1;
                        }
                        batch.remove(id.to_string().as_bytes());
                        return false;
                    }
                    Some(_) => t.heat.decayed(now, hl).reads >= COLD_READS,
                };
                if !keep {
                    report.dropped += 1;
                    batch.remove(id.to_string().as_bytes());
                }
                keep
            });
        }
        self.tracked.fetch_sub(report.carried + report.dropped, Ordering::Relaxed);
        for (from, t) in carries {
            for (to, share) in replacements(&snapshot, from) {
                let heat = t.heat.scaled(share);
                if self.add(to, heat, t.last_read_ms) {
                    debug!(from = %from, to = %to, reads = heat.reads, "heat carried to a rewrite's output");
                } else {
                    warn!(from = %from, to = %to, "heat tracker full; a rewrite's output did not inherit its heat");
                }
            }
        }
        let mut rates = Vec::new();
        let mut written_ids = Vec::new();
        for shard in &self.shards {
            let mut map = shard.lock();
            for (id, t) in map.iter_mut() {
                rates.push(t.heat.reads_per_day(now, hl));
                if t.dirty {
                    t.dirty = false;
                    let value = serde_json::to_vec(t)
                        .map_err(|source| StoreError::CatalogEncode { what: "heat record", source })?;
                    batch.insert(id.to_string().as_bytes(), value);
                    written_ids.push(*id);
                }
            }
        }
        report.tracked = rates.len();
        report.written = written_ids.len();
        let written = self.tree.apply_batch(batch).and_then(|()| self.tree.flush().map(drop));
        if let Err(source) = written {
            // The counts stay in memory, marked as changed again: the next flush retries them.
            for id in &written_ids {
                if let Some(t) = self.shard(id).lock().get_mut(id) {
                    t.dirty = true;
                }
            }
            metrics::counter!("tierd_heat_flushes_total", "outcome" => "error").increment(1);
            return Err(StoreError::Catalog { op: "persist heat", source });
        }
        for r in &rates {
            metrics::histogram!("tierd_segment_heat").record(*r);
        }
        metrics::gauge!("tierd_heat_tracked_segments").set(report.tracked as f64);
        metrics::counter!("tierd_heat_flushes_total", "outcome" => "ok").increment(1);
        metrics::counter!("tierd_heat_written_total").increment(report.written as u64);
        metrics::histogram!("tierd_heat_flush_seconds").record(started.elapsed().as_secs_f64());
        debug!(
            written = report.written,
            carried = report.carried,
            dropped = report.dropped,
            tracked = report.tracked,
            "heat flushed"
        );
        Ok(report)
    }
}

/// The live segments that took over `from`'s data, each with its share (by bytes; equal shares when all are
/// empty), following chains of rewrites up to [`MAX_CARRY_HOPS`]. Side segments of removed duplicates get none.
fn replacements(snapshot: &CatalogSnapshot, from: SegmentId) -> Vec<(SegmentId, f64)> {
    let mut out: Vec<(SegmentId, f64)> = Vec::new();
    let mut frontier = vec![(from, 1.0f64)];
    for _ in 0..MAX_CARRY_HOPS {
        let mut next = Vec::new();
        for (id, share) in frontier {
            let Some(m) = snapshot.get(&id) else { continue };
            let Some(r) = m.retired.as_ref().filter(|_| m.state == SegmentState::Retired) else {
                if id != from {
                    out.push((id, share));
                }
                continue;
            };
            let targets: Vec<_> = r
                .replaced_by
                .iter()
                .filter_map(|t| snapshot.get(t))
                .filter(|t| t.role.is_data())
                .map(|t| (t.id, t.bytes))
                .collect();
            let total: u64 = targets.iter().map(|t| t.1).sum();
            for (t, bytes) in &targets {
                let part = if total == 0 { 1.0 / targets.len() as f64 } else { *bytes as f64 / total as f64 };
                next.push((*t, share * part));
            }
        }
        if next.is_empty() {
            break;
        }
        frontier = next;
    }
    out
}

#[cfg(test)]
mod tests;
