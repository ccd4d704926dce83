//! Leases: a catalog lookup promises its reader that the segments it returned stay readable until the lease
//! expires. Garbage collection honours every live lease.

use serde::{Deserialize, Serialize};

use super::db::Catalog;
use super::schema::{decode, encode};
use crate::error::{Result, StoreError};
use crate::layout::SegmentId;

/// A lease as handed to readers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: String,
    pub expires_at_ms: i64,
}

/// A lease as stored: the promise and what it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub expires_at_ms: i64,
    pub generation: u64,
    pub segments: Vec<SegmentId>,
}

impl Catalog {
    /// Grants a lease over `segments` until `now_ms + ttl_ms`. Leases are written to sled without a flush of
    /// their own (sled flushes every 500 ms and every commit flushes): a crash can lose a lease granted in the
    /// last moments, so garbage collection after a restart must also wait one lease TTL (see ARCHITECTURE.md).
    pub fn grant_lease(&self, now_ms: i64, ttl_ms: i64, generation: u64, segments: Vec<SegmentId>) -> Result<Lease> {
        let id = SegmentId::generate(now_ms).to_string();
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        let record = LeaseRecord { expires_at_ms, generation, segments };
        self.check_headroom("lease")?;
        self.leases
            .insert(id.as_bytes(), encode("lease", &record)?)
            .map_err(|source| StoreError::Catalog { op: "grant a lease", source })?;
        metrics::counter!("tierd_catalog_leases_granted_total").increment(1);
        Ok(Lease { id, expires_at_ms })
    }

    /// Every lease that has not expired at `now_ms`.
    pub fn live_leases(&self, now_ms: i64) -> Result<Vec<(String, LeaseRecord)>> {
        let mut out = Vec::new();
        for kv in self.leases.iter() {
            let (k, v) = kv.map_err(|source| StoreError::Catalog { op: "read leases", source })?;
            let rec: LeaseRecord = decode("lease", &k, &v)?;
            if rec.expires_at_ms > now_ms {
                out.push((String::from_utf8_lossy(&k).into_owned(), rec));
            }
        }
        Ok(out)
    }

    /// Removes leases that expired before `now_ms` (and any that cannot be read); returns how many. Below the
    /// catalog's headroom nothing is removed (a removal is a write to sled's log too): expired leases promise
    /// nothing, so they wait for space harmlessly.
    pub fn prune_leases(&self, now_ms: i64) -> Result<usize> {
        if self.check_headroom("lease_prune").is_err() {
            return Ok(0);
        }
        let mut n = 0;
        for kv in self.leases.iter() {
            let (k, v) = kv.map_err(|source| StoreError::Catalog { op: "read leases", source })?;
            let expired = serde_json::from_slice::<LeaseRecord>(&v).map(|r| r.expires_at_ms <= now_ms).unwrap_or(true);
            if expired {
                self.leases.remove(k).map_err(|source| StoreError::Catalog { op: "prune leases", source })?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Leases granted by one daemon, coalesced and capped: a lookup of the same segments at the same catalog generation
/// as an earlier one reuses that lease while it still has at least half its TTL to run (its true expiry is what the
/// reader is told), so a query node polling the catalog writes one lease per half-TTL, not one per lookup; and at
/// most `max_live` leases are live at once, past which a lookup is refused (503) rather than growing the lease tree
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
