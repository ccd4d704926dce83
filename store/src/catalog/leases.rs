//! Leases: a catalog lookup promises its reader that the segments it returned stay readable until the lease
//! expires. Garbage collection honours every live lease.
//!
//! Leases live in memory only. A crash loses them, and that is already covered: garbage collection trusts no lease
//! within one lease TTL of a start (`policies::gc`, "restarted recently"), by which time every lease granted before
//! the crash has expired. Writing each one to sled bought no safety and cost a write per lookup (p99 314 µs against
//! 25 µs without it, BENCHMARKS.md "Catalog lookups"), and a lookup failed on a full disk. Catalogs written by
//! earlier releases have a `leases` tree; it is never read, and the first lease pruning with room on the disk
//! empties it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::db::Catalog;
use crate::error::{Result, StoreError};
use crate::layout::SegmentId;

/// A lease as handed to readers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: String,
    pub expires_at_ms: i64,
}

/// A lease as held: the promise and what it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub expires_at_ms: i64,
    pub generation: u64,
    pub segments: Vec<SegmentId>,
}

/// The leases a catalog holds, by lease id.
pub(super) type LeaseTable = parking_lot::Mutex<BTreeMap<String, LeaseRecord>>;

impl Catalog {
    /// Grants a lease over `segments` until `now_ms + ttl_ms`, held in memory (see the module documentation). Callers
    /// bound how many are live ([`LeaseGrants`]).
    pub fn grant_lease(&self, now_ms: i64, ttl_ms: i64, generation: u64, segments: Vec<SegmentId>) -> Result<Lease> {
        let id = SegmentId::generate(now_ms).to_string();
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        self.leases.lock().insert(id.clone(), LeaseRecord { expires_at_ms, generation, segments });
        metrics::counter!("tierd_catalog_leases_granted_total").increment(1);
        Ok(Lease { id, expires_at_ms })
    }

    /// Every lease that has not expired at `now_ms`.
    pub fn live_leases(&self, now_ms: i64) -> Result<Vec<(String, LeaseRecord)>> {
        let leases = self.leases.lock();
        Ok(leases.iter().filter(|(_, r)| r.expires_at_ms > now_ms).map(|(k, r)| (k.clone(), r.clone())).collect())
    }

    /// Forgets leases that expired by `now_ms`; returns how many. Also empties the `leases` tree earlier releases
    /// wrote, once, when the disk has room (a removal is a write to sled's log).
    pub fn prune_leases(&self, now_ms: i64) -> Result<usize> {
        if !self.stored_leases.is_empty() && self.check_headroom("lease_prune").is_ok() {
            self.stored_leases.clear().map_err(|source| StoreError::Catalog { op: "drop stored leases", source })?;
        }
        let mut leases = self.leases.lock();
        let before = leases.len();
        leases.retain(|_, r| r.expires_at_ms > now_ms);
        Ok(before - leases.len())
    }
}

/// Leases granted by one daemon, coalesced and capped: a lookup of the same segments at the same catalog generation
/// as an earlier one reuses that lease while it still has at least half its TTL to run (its true expiry is what the
/// reader is told), so a query node polling the catalog makes one lease per half-TTL, not one per lookup; and at
/// most `max_live` leases are live at once, past which a lookup is refused (503) rather than growing the lease table
/// without bound.
#[derive(Debug)]
pub struct LeaseGrants {
    /// Live leases granted since start, by a hash of (generation, segments).
    live: parking_lot::Mutex<std::collections::HashMap<u64, Lease>>,
    max_live: usize,
}

impl LeaseGrants {
    pub fn new(max_live: usize) -> Self {
        LeaseGrants { live: Default::default(), max_live }
    }

    /// A lease over `segments` of `generation`: a recent one that covers exactly them, or a new one.
    pub fn grant(
        &self,
        catalog: &Catalog,
        now_ms: i64,
        ttl_ms: i64,
        generation: u64,
        segments: Vec<SegmentId>,
    ) -> Result<Lease> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (generation, &segments).hash(&mut h);
        let key = h.finish();
        let mut live = self.live.lock();
        if let Some(l) = live.get(&key).filter(|l| l.expires_at_ms.saturating_sub(now_ms) >= ttl_ms / 2) {
            metrics::counter!("tierd_catalog_leases_coalesced_total").increment(1);
            return Ok(l.clone());
        }
        let max = self.max_live;
        if live.len() >= max {
            live.retain(|_, l| l.expires_at_ms > now_ms);
        }
        if live.len() >= max && !live.contains_key(&key) {
            metrics::counter!("tierd_catalog_leases_refused_total").increment(1);
            return Err(StoreError::Backpressure(format!(
                "{} catalog leases are live (catalog.max_live_leases): retry once some expire",
                live.len()
            )));
        }
        let lease = catalog.grant_lease(now_ms, ttl_ms, generation, segments)?;
        live.insert(key, lease.clone());
        metrics::gauge!("tierd_catalog_leases_live").set(live.len() as f64);
        Ok(lease)
    }
}
