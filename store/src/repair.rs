//! Repair instead of failing: a copy that fails its checksum while the segment has another copy is not fatal.
//!
//! Readers ([`crate::read::SegmentSource`]) fall back to the segment's other copy (a hot copy that does not verify
//! -> the cold copy, which is verified block by block) and report the bad copy here; so does the scrub. The
//! [`RepairQueue`] is bounded (`max_pending` segments; more are counted and dropped: the scrub or the next read
//! reports them again). [`repair`] then replaces each bad copy through the crash-safe move steps: the bad copy is
//! taken out of service by a move to the other tier alone (gc deletes it through the trash after leases and grace),
//! and a fresh copy is made from the good one by a move back to both tiers, verified on its way like any move.
//! A segment with no good copy (found by recovery, the scrub, a read or a repair) is reported once, loudly: an error
//! log naming it, `tierd_segments_damaged` (a gauge of how many are known now) and `tierd_segments_damaged_total`,
//! and the list in `GET /v1/status` ([`RepairQueue::damaged`]); its readers get an error naming it, never a wrong
//! answer. It leaves the list when the segment does (a rewrite or a deletion replaced it).

use std::collections::BTreeMap;

use parking_lot::Mutex;
use tracing::{error, info, warn};

use crate::catalog::{Placement, SegmentState};
use crate::layout::{SegmentId, Tier};
use crate::moves::Mover;

/// The queue's bound when the configuration gives none.
pub const DEFAULT_MAX_PENDING: usize = 10_000;

/// Segments with a copy that failed its checksum, waiting for [`repair`]; and segments with no good copy at all.
#[derive(Debug)]
pub struct RepairQueue {
    pending: Mutex<BTreeMap<SegmentId, Tier>>,
    max_pending: usize,
    damaged: Mutex<BTreeMap<SegmentId, Damage>>,
}

/// A segment with no good copy: what was found wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Damage {
    pub segment: String,
    /// The tier of the copy that was found bad (the segment's only copy).
    pub tier: String,
    /// What was found: `missing`, `short` (shorter than its committed length) or `corrupt` (fails its checksum).
    pub problem: String,
    /// Who found it: `recovery`, `scrub`, `read` or `repair`.
    pub found_by: String,
}

impl RepairQueue {
    pub fn new(max_pending: usize) -> Self {
        RepairQueue { pending: Mutex::new(BTreeMap::new()), max_pending, damaged: Mutex::new(BTreeMap::new()) }
    }

    /// Reports that segment `id` has no good copy: logged and counted the first time only. The damaged list is
    /// bounded like the queue; past it, the segment is counted in `tierd_repairs_dropped_total` (the log has it).
    pub fn report_damaged(&self, id: SegmentId, tier: Tier, problem: &str, found_by: &str) {
        let mut d = self.damaged.lock();
        if d.contains_key(&id) {
            return;
        }
        error!(segment = %id, tier = tier.label(), problem, found_by, "a segment has no good copy: its events cannot be read");
        metrics::counter!("tierd_segments_damaged_total", "problem" => problem.to_string()).increment(1);
        if d.len() >= self.max_pending {
            metrics::counter!("tierd_repairs_dropped_total").increment(1);
            return;
        }
        let damage = Damage {
            segment: id.to_string(),
            tier: tier.label().to_string(),
            problem: problem.to_string(),
            found_by: found_by.to_string(),
        };
        d.insert(id, damage);
        metrics::gauge!("tierd_segments_damaged").set(d.len() as f64);
    }

    /// Segments known to have no good copy, by id.
    pub fn damaged(&self) -> Vec<Damage> {
        self.damaged.lock().values().cloned().collect()
    }

    /// Forgets damaged segments that `live` no longer holds (replaced by a rewrite or a deletion).
    pub fn forget_damaged_unless(&self, live: impl Fn(&SegmentId) -> bool) {
        let mut d = self.damaged.lock();
        d.retain(|id, _| live(id));
        metrics::gauge!("tierd_segments_damaged").set(d.len() as f64);
    }

    /// Reports that segment `id`'s copy on `tier` does not verify.
    pub fn report(&self, id: SegmentId, tier: Tier) {
        let mut p = self.pending.lock();
        if p.len() >= self.max_pending && !p.contains_key(&id) {
            metrics::counter!("tierd_repairs_dropped_total").increment(1);
            return;
        }
        if p.insert(id, tier).is_none() {
            metrics::counter!("tierd_repairs_reported_total", "tier" => tier.label()).increment(1);
            warn!(segment = %id, tier = tier.label(), "copy failed its checksum; queued for repair");
        }
    }

    /// Segments waiting for repair now.
    pub fn pending(&self) -> Vec<(SegmentId, Tier)> {
        self.pending.lock().iter().map(|(id, t)| (*id, *t)).collect()
    }

    fn done(&self, id: SegmentId) {
        self.pending.lock().remove(&id);
    }
}

/// What one repair did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    pub segment: SegmentId,
    /// The tier whose copy was replaced.
    pub tier: Tier,
    /// `Err`: why it could not be repaired (it stays queued unless the segment is gone or has no other copy).
    pub outcome: Result<(), String>,
}

/// Replaces every queued bad copy from the segment's other copy (see the module documentation). Blocking.
pub fn repair(queue: &RepairQueue, mover: &Mover, catalog: &crate::Catalog) -> Vec<Repaired> {
    let mut out = Vec::new();
    let snapshot = catalog.snapshot();
    queue.forget_damaged_unless(|id| snapshot.get(id).is_some_and(|m| m.state == SegmentState::Sealed));
    for (id, bad) in queue.pending() {
        let Some(meta) = catalog.snapshot().get(&id).cloned() else {
            queue.done(id);
            continue;
        };
        let has = |t: Tier| meta.locations.iter().any(|l| l.tier == t);
        let good = match bad {
            Tier::Hot => Tier::Cold,
            Tier::Cold => Tier::Hot,
        };
        if meta.state != SegmentState::Sealed || !has(bad) || !has(good) {
            // Retired, rewritten, or no other copy to repair from: nothing a move can do.
            if meta.state == SegmentState::Sealed && has(bad) && !has(good) {
                metrics::counter!("tierd_repairs_total", "outcome" => "no_good_copy").increment(1);
                queue.report_damaged(id, bad, "corrupt", "repair");
            }
            queue.done(id);
            continue;
        }
        let keep_only = match good {
            Tier::Hot => Placement::Hot,
            Tier::Cold => Placement::Cold,
        };
        // Take the bad copy out of service, then copy the good one back (each a crash-safe, verified move).
        let outcome = mover
            .execute(id, keep_only)
            .and_then(|_| mover.execute(id, Placement::Both))
            .map(|_| ())
            .map_err(|e| e.to_string());
        match &outcome {
            Ok(()) => {
                info!(segment = %id, tier = bad.label(), "bad copy replaced from the other tier");
                metrics::counter!("tierd_repairs_total", "outcome" => "ok").increment(1);
                queue.done(id);
            }
            Err(e) => {
                warn!(segment = %id, tier = bad.label(), error = %e, "repair failed; retried later");
                metrics::counter!("tierd_repairs_total", "outcome" => "error").increment(1);
            }
        }
        out.push(Repaired { segment: id, tier: bad, outcome });
    }
    out
}
