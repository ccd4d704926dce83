//! The in-memory, immutable view of one catalog generation.
//!
//! Built from persistent maps (`imbl`), so publishing a new generation shares everything that did not change and
//! readers holding an old snapshot keep a consistent view for as long as they need.

use std::sync::Arc;

use imbl::OrdMap;

use super::change::CatalogChange;
use super::record::{SegmentMeta, SegmentState};
use crate::layout::{day_of_ms, SegmentId, Tier};

/// Segments of one project, keyed by (UTC day, id) so a time window maps to a key range.
type ProjectIndex = OrdMap<(i32, SegmentId), Arc<SegmentMeta>>;

#[derive(Debug, Clone, Default)]
pub struct CatalogSnapshot {
    generation: u64,
    hot_bytes: u64,
    by_id: OrdMap<SegmentId, Arc<SegmentMeta>>,
    by_project: OrdMap<String, ProjectIndex>,
}

impl CatalogSnapshot {
    pub(super) fn build(generation: u64, segments: Vec<SegmentMeta>) -> Self {
        let changes = segments.into_iter().map(CatalogChange::Put).collect();
        CatalogSnapshot::default().apply(generation, changes)
    }

    pub(super) fn apply(&self, generation: u64, changes: Vec<CatalogChange>) -> Self {
        let mut next = self.clone();
        next.generation = generation;
        for change in changes {
            match change {
                CatalogChange::Put(m) => {
                    next.remove(&m.id);
                    next.hot_bytes += hot_bytes_of(&m);
                    let m = Arc::new(m);
                    next.by_project.entry(m.project.clone()).or_default().insert((m.day, m.id), m.clone());
                    next.by_id.insert(m.id, m);
                }
                CatalogChange::Remove(id) => next.remove(&id),
                CatalogChange::ClearIntent(_) | CatalogChange::Expect { .. } | CatalogChange::ExpectAbsent(_) => {}
            }
        }
        next
    }

    fn remove(&mut self, id: &SegmentId) {
        if let Some(old) = self.by_id.remove(id) {
            self.hot_bytes -= hot_bytes_of(&old);
            if let Some(p) = self.by_project.get_mut(&old.project) {
                p.remove(&(old.day, old.id));
                if p.is_empty() {
                    self.by_project.remove(&old.project);
                }
            }
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn get(&self, id: &SegmentId) -> Option<&Arc<SegmentMeta>> {
        self.by_id.get(id)
    }

    /// Every segment, in id order.
    pub fn segments(&self) -> impl Iterator<Item = &Arc<SegmentMeta>> {
        self.by_id.values()
    }

    /// Projects with at least one segment (live or retired).
    pub fn projects(&self) -> impl Iterator<Item = &String> {
        self.by_project.keys()
    }

    /// The live event segments of `project` that may hold events in `[from_ms, to_ms)`, ordered by (day, id).
    /// Retired segments are never returned (their replacements are), nor side segments of removed duplicates.
    pub fn lookup(&self, project: &str, from_ms: i64, to_ms: i64) -> Vec<Arc<SegmentMeta>> {
        self.lookup_filtered(project, from_ms, to_ms, |m| m.is_queryable())
    }

    /// As [`CatalogSnapshot::lookup`], with retired event segments too (those not yet deleted).
    pub fn lookup_including_retired(&self, project: &str, from_ms: i64, to_ms: i64) -> Vec<Arc<SegmentMeta>> {
        self.lookup_filtered(project, from_ms, to_ms, |m| m.role.is_data())
    }

    /// The side segments of duplicates removed from `project`'s events in `[from_ms, to_ms)`, live or retired.
    pub fn lookup_duplicates(&self, project: &str, from_ms: i64, to_ms: i64) -> Vec<Arc<SegmentMeta>> {
        self.lookup_filtered(project, from_ms, to_ms, |m| !m.role.is_data())
    }

    fn lookup_filtered(
        &self,
        project: &str,
        from_ms: i64,
        to_ms: i64,
        keep: impl Fn(&SegmentMeta) -> bool,
    ) -> Vec<Arc<SegmentMeta>> {
        let Some(index) = self.by_project.get(project) else { return Vec::new() };
        if from_ms >= to_ms {
            return Vec::new();
        }
        let lo = (day_of_ms(from_ms), SegmentId(ulid::Ulid::nil()));
        let hi = (day_of_ms(to_ms - 1), SegmentId(ulid::Ulid::from(u128::MAX)));
        index.range(lo..=hi).map(|(_, m)| m).filter(|m| keep(m) && m.overlaps(from_ms, to_ms)).cloned().collect()
    }

    /// (copies, bytes) per (tier, segment state), for gauges: a segment on both tiers counts on each, a dropped
    /// copy (moved away, not yet deleted) counts as retired.
    pub fn totals(&self) -> Vec<((Tier, SegmentState), (u64, u64))> {
        let mut out: Vec<((Tier, SegmentState), (u64, u64))> = Vec::new();
        let mut add = |k: (Tier, SegmentState), bytes: u64| match out.iter_mut().find(|(key, _)| *key == k) {
            Some((_, (n, b))) => {
                *n += 1;
                *b += bytes;
            }
            None => out.push((k, (1, bytes))),
        };
        for m in self.by_id.values() {
            for l in &m.locations {
                add((l.tier, m.state), m.bytes);
            }
            for d in &m.dropped {
                add((d.location.tier, SegmentState::Retired), m.bytes);
            }
        }
        out
    }

    /// Bytes held in the hot tier (live, retired and dropped copies: everything still on the disk). Kept up to date
    /// by [`CatalogSnapshot::apply`], so the ingest path can check capacity on every group commit for free.
    pub fn hot_bytes(&self) -> u64 {
        self.hot_bytes
    }

    /// The highest ingest sequence any committed segment holds.
    pub fn max_seq(&self) -> Option<u64> {
        self.by_id.values().filter(|m| m.rows > 0).map(|m| m.max_seq).max()
    }
}

/// The bytes `m` holds on the hot disk.
fn hot_bytes_of(m: &SegmentMeta) -> u64 {
    m.bytes * m.all_locations().filter(|l| l.tier == Tier::Hot).count() as u64
}
