//! The simulated store: segments with their placement, codec, bytes, heat and residency, the cache of cold blocks,
//! and the bill. Scenarios decide ([`super::scenario`]); this module carries their actions out and accounts for
//! every byte, request and dollar they cause, the way the daemon's moves and rewrites would.

use std::collections::{BTreeMap, HashMap};

use crate::cost::{Prices, StorageClass, GIB, MONTH_MS};
use crate::error::PolicyError;
use crate::segment::{Placement, SegmentFormat, SegmentState, SegmentStats};

use super::codec;
use super::latency::{LatencyModel, Source};
use super::workload::{Read, Write, DAY_MS};

/// An exponentially decayed rate, per day, with a half-life: each event adds `ln 2 / half_life_days`, so a steady
/// `r` events a day reads as `r`. (A private stand-in for the heat tracker's computation, which lives elsewhere.)
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Decayed {
    value: f64,
    at_ms: i64,
}

impl Decayed {
    pub(crate) fn at(&self, now_ms: i64, half_life_ms: i64) -> f64 {
        let dt = (now_ms - self.at_ms).max(0) as f64;
        self.value * (-dt / half_life_ms as f64 * std::f64::consts::LN_2).exp()
    }

    pub(crate) fn add(&mut self, now_ms: i64, amount: f64, half_life_ms: i64) {
        let half_life_days = half_life_ms as f64 / DAY_MS as f64;
        self.value = self.at(now_ms, half_life_ms) + amount * std::f64::consts::LN_2 / half_life_days;
        self.at_ms = now_ms.max(self.at_ms);
    }
}

/// One simulated segment.
#[derive(Debug, Clone)]
pub(crate) struct SimSegment {
    /// Identity, codec, bytes, placement and `placed_at_ms` as the planner sees them; heat is filled in by
    /// [`SimStore::snapshot`].
    pub stats: SegmentStats,
    /// Size in the ingest codec: reads and rewrites scale from it.
    pub ingest_bytes: u64,
    /// Storage class of the cold copy, when there is one.
    pub cold_class: StorageClass,
    pub heat: Decayed,
    pub heat_bytes: Decayed,
    /// Last write or read.
    pub last_access_ms: i64,
    /// Bumped by every rewrite: a new object, so cached blocks of the old one are of no use.
    pub generation: u32,
    /// Merged into another segment by a compaction: gone.
    pub retired: bool,
}

impl SimSegment {
    pub(crate) fn has_hot(&self) -> bool {
        matches!(self.stats.placement, Placement::Hot | Placement::Both)
    }

    pub(crate) fn has_cold(&self) -> bool {
        matches!(self.stats.placement, Placement::Cold | Placement::Both)
    }
}

/// What a scenario does to a segment (by index into [`SimStore::segments`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SimAction {
    /// Change the tiers holding copies; a new cold copy is written in `class`.
    Move { seg: usize, to: Placement, class: StorageClass },
    /// Change the storage class of the cold copy in place (S3 Intelligent-Tiering's own transitions: free).
    Reclass { seg: usize, class: StorageClass },
    /// Rewrite with another codec.
    Recompress { seg: usize, codec: String },
    /// Merge segments of one (project, day) into the first.
    Compact { segs: Vec<usize> },
}

/// Everything counted over a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tally {
    pub storage_cost: f64,
    pub transition_cost: f64,
    pub read_cost: f64,
    pub puts: u64,
    pub gets: u64,
    pub deletes: u64,
    pub bytes_moved: u64,
    pub bytes_rewritten: u64,
    pub moves: u64,
    pub reclasses: u64,
    pub recompressions: u64,
    pub compactions: u64,
    pub latencies_ms: Vec<f64>,
    pub reads_hot: u64,
    pub reads_cache: u64,
    pub reads_cold: u64,
    pub unserved_reads: u64,
}

/// A byte-bounded LRU of cold bytes read, per segment object (index, generation). Simpler than the daemon's
/// segmented LRU of 1 MiB blocks (it keeps whole read extents, and a read is a hit only when the object's cached
/// extent covers it), so it errs on the side of fewer hits.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    max_bytes: u64,
    bytes: u64,
    clock: u64,
    entries: HashMap<(usize, u32), (u64, u64)>,
    lru: BTreeMap<u64, (usize, u32)>,
}

impl Cache {
    pub(crate) fn new(max_bytes: u64) -> Cache {
        Cache { max_bytes, ..Cache::default() }
    }

    /// Whether `bytes` of `key` are cached; a hit or a fill makes `key` the most recently used.
    pub(crate) fn read(&mut self, key: (usize, u32), bytes: u64) -> bool {
        self.clock += 1;
        let old = self.entries.get(&key).copied();
        if let Some((_, stamp)) = old {
            self.lru.remove(&stamp);
        }
        let cached = old.map_or(0, |(b, _)| b);
        let hit = cached >= bytes;
        let keep = cached.max(bytes);
        if keep > self.max_bytes {
            self.entries.remove(&key);
            self.bytes -= cached;
            return hit;
        }
        self.bytes = self.bytes - cached + keep;
        self.entries.insert(key, (keep, self.clock));
        self.lru.insert(self.clock, key);
        while self.bytes > self.max_bytes {
            let Some((_, victim)) = self.lru.pop_first() else { break };
            if let Some((b, _)) = self.entries.remove(&victim) {
                self.bytes -= b;
            }
        }
        hit
    }
}

/// The simulated store.
pub(crate) struct SimStore<'a> {
    pub segments: Vec<SimSegment>,
    by_day: HashMap<(String, i32), Vec<usize>>,
    ids: HashMap<String, usize>,
    pub tally: Tally,
    cache: Cache,
    prices: &'a Prices,
    latency: &'a LatencyModel,
    ingest_codec: &'a str,
    half_life_ms: i64,
    segment_max_bytes: u64,
}

impl<'a> SimStore<'a> {
    pub(crate) fn new(
        prices: &'a Prices,
        latency: &'a LatencyModel,
        ingest_codec: &'a str,
        half_life_ms: i64,
        cache_max_bytes: u64,
        segment_max_bytes: u64,
    ) -> SimStore<'a> {
        SimStore {
            segments: Vec::new(),
            by_day: HashMap::new(),
            ids: HashMap::new(),
            tally: Tally::default(),
            cache: Cache::new(cache_max_bytes),
            prices,
            latency,
            ingest_codec,
            half_life_ms,
            segment_max_bytes: segment_max_bytes.max(1),
        }
    }

    /// Bills storage of the current copies for `dt_ms`.
    pub(crate) fn bill_storage(&mut self, dt_ms: i64) {
        self.tally.storage_cost += self.monthly_storage() * dt_ms as f64 / MONTH_MS as f64;
    }

    /// Monthly storage cost of the current copies.
    pub(crate) fn monthly_storage(&self) -> f64 {
        self.bytes_by_class().iter().map(|(class, bytes)| *bytes as f64 / GIB * self.prices.gb_month(*class)).sum()
    }

    /// Bytes of live copies per storage class.
    pub(crate) fn bytes_by_class(&self) -> [(StorageClass, u64); 3] {
        let mut out = [(StorageClass::Hot, 0), (StorageClass::Cold, 0), (StorageClass::ColdInfrequent, 0)];
        for s in self.segments.iter().filter(|s| !s.retired) {
            if s.has_hot() {
                out[0].1 += s.stats.bytes;
            }
            if s.has_cold() {
                let i = if s.cold_class == StorageClass::Cold { 1 } else { 2 };
                out[i].1 += s.stats.bytes;
            }
        }
        out
    }

    /// A (project, day) sealed: one to four hot segments in the ingest codec.
    pub(crate) fn write(&mut self, w: &Write) {
        let n = w.bytes.div_ceil(self.segment_max_bytes).clamp(1, 4);
        for i in 0..n {
            let bytes = w.bytes / n + u64::from(i < w.bytes % n);
            let idx = self.segments.len();
            let id =
                format!("{}-{}-{}", w.project, w.day, self.by_day.get(&(w.project.clone(), w.day)).map_or(0, Vec::len));
            self.segments.push(SimSegment {
                stats: SegmentStats {
                    id,
                    project: w.project.clone(),
                    day: w.day,
                    state: SegmentState::Sealed,
                    format: SegmentFormat::Columnar,
                    codec: self.ingest_codec.to_owned(),
                    rows: 0,
                    bytes,
                    created_at_ms: w.time_ms,
                    max_time_ms: (i64::from(w.day) + 1) * DAY_MS - 1,
                    placement: Placement::Hot,
                    placed_at_ms: w.time_ms,
                    heat: 0.0,
                    heat_bytes: 0.0,
                },
                ingest_bytes: bytes,
                cold_class: StorageClass::Cold,
                heat: Decayed::default(),
                heat_bytes: Decayed::default(),
                last_access_ms: w.time_ms,
                generation: 0,
                retired: false,
            });
            self.ids.insert(self.segments[idx].stats.id.clone(), idx);
            self.by_day.entry((w.project.clone(), w.day)).or_default().push(idx);
        }
    }

    /// One read: every segment of its (project, day) is read in parallel, its share of the bytes scaled to its
    /// codec; the read's latency is the slowest segment's. Returns the segments read (for the scenario's hook).
    pub(crate) fn read(&mut self, r: &Read) -> Vec<usize> {
        let idxs: Vec<usize> = self
            .by_day
            .get(&(r.project.clone(), r.day))
            .map(|v| v.iter().copied().filter(|&i| !self.segments[i].retired).collect())
            .unwrap_or_default();
        if idxs.is_empty() {
            self.tally.unserved_reads += 1;
            return Vec::new();
        }
        let total: u64 = idxs.iter().map(|&i| self.segments[i].ingest_bytes).sum::<u64>().max(1);
        let mut slowest: f64 = 0.0;
        for &i in &idxs {
            let s = &self.segments[i];
            let share = r.bytes as f64 * s.ingest_bytes as f64 / total as f64;
            let bytes =
                ((share * s.stats.bytes as f64 / s.ingest_bytes.max(1) as f64).round() as u64).min(s.stats.bytes);
            let source = if s.has_hot() {
                self.tally.reads_hot += 1;
                Source::Hot
            } else if self.cache.read((i, s.generation), bytes) {
                self.tally.reads_cache += 1;
                Source::Cache
            } else {
                self.tally.reads_cold += 1;
                self.tally.gets += self.prices.read_requests(bytes);
                self.tally.read_cost += self.prices.read_cost(bytes, s.cold_class);
                Source::Cold
            };
            slowest = slowest.max(self.latency.read_ms(source, bytes));
            let s = &mut self.segments[i];
            s.heat.add(r.time_ms, 1.0, self.half_life_ms);
            s.heat_bytes.add(r.time_ms, bytes as f64, self.half_life_ms);
            s.last_access_ms = s.last_access_ms.max(r.time_ms);
        }
        self.tally.latencies_ms.push(slowest);
        idxs
    }

    /// The planner's view at `now_ms`: every segment's stats with its heat as of now.
    pub(crate) fn snapshot(&self, now_ms: i64) -> Vec<SegmentStats> {
        self.segments
            .iter()
            .filter(|s| !s.retired)
            .map(|s| SegmentStats {
                heat: s.heat.at(now_ms, self.half_life_ms),
                heat_bytes: s.heat_bytes.at(now_ms, self.half_life_ms),
                ..s.stats.clone()
            })
            .collect()
    }

    /// Bytes on the hot disk.
    pub(crate) fn hot_bytes(&self) -> u64 {
        self.bytes_by_class()[0].1
    }

    /// Index of a segment id.
    pub(crate) fn index(&self, id: &str) -> Option<usize> {
        self.ids.get(id).copied()
    }

    /// Carries out one action, accounting for its bytes, requests and dollars.
    pub(crate) fn apply(&mut self, now_ms: i64, action: &SimAction) -> Result<(), PolicyError> {
        let p = self.prices;
        let t = &mut self.tally;
        match action {
            SimAction::Move { seg, to, class } => {
                let s = &mut self.segments[*seg];
                let (from, bytes) = (s.stats.placement, s.stats.bytes);
                if from == *to {
                    return Ok(());
                }
                let (had_cold, old_class) = (s.has_cold(), s.cold_class);
                let wants_cold = matches!(to, Placement::Cold | Placement::Both);
                let wants_hot = matches!(to, Placement::Hot | Placement::Both);
                if wants_cold && !had_cold {
                    t.transition_cost += p.upload_cost(bytes, *class);
                    t.puts += p.upload_requests(bytes);
                    t.bytes_moved += bytes;
                    s.cold_class = *class;
                }
                if wants_hot && !s.has_hot() {
                    t.transition_cost += p.read_cost(bytes, old_class);
                    t.gets += p.read_requests(bytes);
                    t.bytes_moved += bytes;
                }
                if had_cold && !wants_cold {
                    t.transition_cost += p.delete_cost(old_class);
                    t.deletes += 1;
                }
                s.stats.placement = *to;
                s.stats.placed_at_ms = now_ms;
                t.moves += 1;
            }
            SimAction::Reclass { seg, class } => {
                let s = &mut self.segments[*seg];
                if s.has_cold() && s.cold_class != *class {
                    s.cold_class = *class;
                    t.reclasses += 1;
                }
            }
            SimAction::Recompress { seg, codec } => {
                let s = &mut self.segments[*seg];
                if s.stats.codec == *codec {
                    return Ok(());
                }
                let new_bytes = codec::rescale(s.ingest_bytes, self.ingest_codec, codec)?;
                Self::rewrite_input(p, t, s);
                t.recompressions += 1;
                s.stats.bytes = new_bytes;
                s.stats.codec = codec.clone();
                Self::rewrite_output(s, now_ms);
            }
            SimAction::Compact { segs } => {
                let Some((&first, rest)) = segs.split_first() else { return Ok(()) };
                let (mut bytes, mut ingest, mut heat, mut heat_bytes) = (0, 0, 0.0, 0.0);
                let mut last_access = i64::MIN;
                for &i in segs {
                    let s = &mut self.segments[i];
                    Self::rewrite_input(p, t, s);
                    bytes += s.stats.bytes;
                    ingest += s.ingest_bytes;
                    heat += s.heat.at(now_ms, self.half_life_ms);
                    heat_bytes += s.heat_bytes.at(now_ms, self.half_life_ms);
                    last_access = last_access.max(s.last_access_ms);
                }
                for &i in rest {
                    self.segments[i].retired = true;
                }
                let s = &mut self.segments[first];
                s.stats.bytes = bytes;
                s.ingest_bytes = ingest;
                s.heat = Decayed { value: heat, at_ms: now_ms };
                s.heat_bytes = Decayed { value: heat_bytes, at_ms: now_ms };
                s.last_access_ms = last_access;
                t.compactions += 1;
                Self::rewrite_output(s, now_ms);
            }
        }
        Ok(())
    }

    /// A rewrite reads its input from the hot disk (the rewriter reads only segments with a hot copy; a cold-only
    /// input is fetched first) and retires it, deleting its cold copy.
    fn rewrite_input(p: &Prices, t: &mut Tally, s: &SimSegment) {
        if !s.has_hot() {
            t.transition_cost += p.read_cost(s.stats.bytes, s.cold_class);
            t.gets += p.read_requests(s.stats.bytes);
        }
        if s.has_cold() {
            t.transition_cost += p.delete_cost(s.cold_class);
            t.deletes += 1;
        }
        t.bytes_rewritten += s.stats.bytes;
    }

    /// A rewrite's output is a new segment on the hot disk, placed now. Its heat stays with the data (the reads
    /// were of these events).
    fn rewrite_output(s: &mut SimSegment, now_ms: i64) {
        s.stats.placement = Placement::Hot;
        s.stats.placed_at_ms = now_ms;
        s.generation += 1;
    }
}
