//! Garbage collection of retired segments: the only code that deletes segment data.
//!
//! A retired segment's file is deleted only when all of these hold, and the reason for keeping it otherwise is
//! reported (`tierd pass run gc --dry-run` lists both):
//! - it was retired by a committed catalog change (state `retired`);
//! - no unexpired lease lists it (leases are what query nodes hold between a lookup and their reads);
//! - no in-process reader still holds a snapshot older than its retirement ([`Catalog::pin`]);
//! - the grace period has passed since its retirement;
//! - the daemon has been up for at least one lease TTL (a lease granted just before a crash may not have reached
//!   the disk, so leases alone cannot be trusted right after a restart).
//!
//! Order: delete the file, fsync the directory (`gc.delete`), then remove the records in one commit. A crash in
//! between leaves retired records whose file is gone; recovery removes them.

use std::collections::HashMap;

use tracing::info;

use crate::catalog::{Catalog, CatalogChange, SegmentState};
use crate::error::{Result, StoreError};
use crate::failpoint::Failpoints;
use crate::layout::{Layout, SegmentId};

#[derive(Debug, Clone, Copy)]
pub struct GcConfig {
    /// How long a retired segment stays on disk after its retirement, at least.
    pub grace_ms: i64,
    /// The lease TTL handed to readers (the wait after a restart).
    pub lease_ttl_ms: i64,
}

/// What GC decided for one retired segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcDecision {
    pub id: SegmentId,
    pub location: String,
    pub bytes: u64,
    pub delete: bool,
    pub reason: String,
}

/// Decides, for every retired segment, whether it may be deleted now (pure given its inputs).
pub fn plan(catalog: &Catalog, now_ms: i64, started_at_ms: i64, cfg: GcConfig) -> Result<Vec<GcDecision>> {
    let snapshot = catalog.snapshot();
    let mut leased: HashMap<SegmentId, (String, i64)> = HashMap::new();
    for (lease_id, rec) in catalog.live_leases(now_ms)? {
        for id in rec.segments {
            let e = leased.entry(id).or_insert((lease_id.clone(), rec.expires_at_ms));
            if rec.expires_at_ms > e.1 {
                *e = (lease_id.clone(), rec.expires_at_ms);
            }
        }
    }
    let oldest_pin = catalog.oldest_pinned_generation();
    let mut out = Vec::new();
    for m in snapshot.segments().filter(|m| m.state == SegmentState::Retired) {
        let Some(r) = &m.retired else { continue };
        let keep = |reason: String| GcDecision {
            id: m.id,
            location: m.location.clone(),
            bytes: m.bytes,
            delete: false,
            reason,
        };
        let decision = if let Some((lease, until)) = leased.get(&m.id) {
            keep(format!("held by lease {lease} until {until}"))
        } else if oldest_pin.is_some_and(|g| g < r.generation) {
            keep(format!("a reader holds catalog generation {} (< retirement {})", oldest_pin.unwrap(), r.generation))
        } else if now_ms < r.at_ms + cfg.grace_ms {
            keep(format!("grace period until {}", r.at_ms + cfg.grace_ms))
        } else if now_ms < started_at_ms + cfg.lease_ttl_ms {
            keep(format!(
                "restarted recently: leases from before the restart may be lost; wait until {}",
                started_at_ms + cfg.lease_ttl_ms
            ))
        } else {
            GcDecision {
                id: m.id,
                location: m.location.clone(),
                bytes: m.bytes,
                delete: true,
                reason: format!(
                    "retired at {} by generation {} (replaced by {:?}); no lease or reader holds it; grace passed",
                    r.at_ms,
                    r.generation,
                    r.replaced_by.iter().map(ToString::to_string).collect::<Vec<_>>()
                ),
            }
        };
        out.push(decision);
    }
    Ok(out)
}

/// Deletes what [`plan`] allows. Returns every decision (deleted or kept, with reasons).
pub fn run(
    layout: &Layout,
    catalog: &Catalog,
    failpoints: &Failpoints,
    now_ms: i64,
    started_at_ms: i64,
    cfg: GcConfig,
) -> Result<Vec<GcDecision>> {
    let decisions = plan(catalog, now_ms, started_at_ms, cfg)?;
    let mut removed = Vec::new();
    for d in decisions.iter().filter(|d| d.delete) {
        let path = layout
            .resolve(&d.location)
            .ok_or_else(|| StoreError::Corrupt { id: d.id, message: format!("bad location {:?}", d.location) })?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(path, e)),
        }
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(|e| StoreError::io(dir, e))?;
        }
        failpoints.hit("gc.delete").map_err(|e| StoreError::io(&path, e))?;
        info!(segment = %d.id, bytes = d.bytes, "retired segment deleted");
        metrics::counter!("tierd_gc_deleted_segments_total").increment(1);
        metrics::counter!("tierd_gc_deleted_bytes_total").increment(d.bytes);
        removed.push(CatalogChange::Remove(d.id));
    }
    if !removed.is_empty() {
        catalog.commit(removed)?;
    }
    Ok(decisions)
}
