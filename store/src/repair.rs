//! Repair instead of failing: a copy that fails its checksum while the segment has another copy is not fatal.
//!
//! Readers ([`crate::read::SegmentSource`]) fall back to the segment's other copy (a hot copy that does not verify
//! -> the cold copy, which is verified block by block) and report the bad copy here; so does the scrub. The
//! [`RepairQueue`] is bounded (`max_pending` segments; more are counted and dropped: the scrub or the next read
//! reports them again). [`repair`] then replaces each bad copy through the crash-safe move steps: the bad copy is
//! taken out of service by a move to the other tier alone (gc deletes it through the trash after leases and grace),
//! and a fresh copy is made from the good one by a move back to both tiers, verified on its way like any move.
//! A segment with no good copy is reported loudly by its readers (an error naming it; never a wrong answer).

use std::collections::BTreeMap;

use parking_lot::Mutex;
use tracing::{error, info, warn};

use crate::catalog::{Placement, SegmentState};
use crate::layout::{SegmentId, Tier};
use crate::moves::Mover;

/// The queue's bound when the configuration gives none.
pub const DEFAULT_MAX_PENDING: usize = 10_000;

/// Segments with a copy that failed its checksum, waiting for [`repair`].
#[derive(Debug)]
pub struct RepairQueue {
    pending: Mutex<BTreeMap<SegmentId, Tier>>,
    max_pending: usize,
}

impl RepairQueue {
    pub fn new(max_pending: usize) -> Self {
        RepairQueue { pending: Mutex::new(BTreeMap::new()), max_pending }
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
                error!(segment = %id, tier = bad.label(), "a copy failed its checksum and there is no other copy");
                metrics::counter!("tierd_repairs_total", "outcome" => "no_good_copy").increment(1);
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
