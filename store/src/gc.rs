//! Garbage collection: the only code that deletes segment data, in the hot directory and in the cold tier.
//!
//! A copy of a segment (a hot file or a cold object) is garbage when it was taken out of service by a committed
//! catalog change: its segment was retired by a rewrite (every copy), or a move dropped it (`dropped`). It is
//! deleted only when all of these hold, and the reason for keeping it otherwise is reported (`tierd pass run gc
//! --dry-run` lists both):
//! - no unexpired lease lists its segment (leases are what query nodes hold between a lookup and their reads);
//! - no in-process reader still holds a snapshot older than the change ([`Catalog::pin`]);
//! - the grace period has passed since the change;
//! - the daemon has been up for at least one lease TTL (a lease granted just before a crash may not have reached
//!   the disk, so leases alone cannot be trusted right after a restart).
//!
//! Deletion goes through the trash: a hot file is renamed to `DATA_DIR/trash/<ms>/<path>`, a cold object copied to
//! `trash/<ms>/<key>` and then deleted (`gc.delete` after each), with the segment's catalog record saved beside
//! them (`DATA_DIR/trash/<ms>/records/<id>.json`); then ONE commit removes the copies from the catalog. Trash
//! entries are deleted for good `gc.trash_retention_secs` later: until then an operator can put a copy back (see
//! ARCHITECTURE.md). A crash between the trash step and the commit leaves a catalog copy that no longer exists:
//! recovery (hot) and the next run (cold: a copy that is already gone counts as moved) finish the job.
//!
//! Reconciliation: every run lists the cold tier's `segments/` prefix against the catalog. An object no record or
//! move intent names is an orphan (an upload of a crashed move); once older than the grace period it goes to the
//! trash. A copy a live segment needs that is not listed is reported loudly (`missing`, an error log and the
//! `tierd_cold_objects_missing` gauge), never "repaired" by forgetting it.
//!
//! Side segments of removed duplicates ([`Role::Duplicates`]) are kept until their `keep_until_ms`; a run past it
//! first retires them (one commit), after which they follow the rules above like any retired segment.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use tracing::{error, info, warn};

use crate::catalog::{CatalogChange, Retirement, Role, SegmentMeta, SegmentState};
use crate::context::StoreContext;
use crate::durable;
use crate::error::{Result, StoreError};
use crate::layout::{Layout, Location, SegmentId, Tier};
pub use crate::layout::{COLD_SEGMENTS_PREFIX, TRASH_PREFIX};

#[derive(Debug, Clone, Copy)]
pub struct GcConfig {
    /// How long a copy stays after it was taken out of service, at least; also the age an unknown cold object must
    /// reach before it counts as an orphan.
    pub grace_ms: i64,
    /// The lease TTL handed to readers (the wait after a restart).
    pub lease_ttl_ms: i64,
    /// How long deleted copies stay in the trash before their final deletion.
    pub trash_retention_ms: i64,
}

/// What GC does with one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GcAction {
    /// Out of service and held by nothing: to the trash.
    Delete,
    /// Out of service but still held (the reason says by what), or an unknown object younger than the grace.
    Keep,
    /// A live side segment of duplicates whose retention ended: retired now, deleted after the grace.
    Expire,
    /// An object under `segments/` that the catalog does not know, older than the grace: to the trash.
    Orphan,
    /// A trash entry past its retention: deleted for good.
    Purge,
    /// A copy a live segment needs that is not in the cold tier: reported, nothing done.
    Missing,
}

/// What GC decided for one copy (or trash entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcDecision {
    /// The segment, when the copy belongs to one the catalog knows.
    pub id: Option<SegmentId>,
    pub location: Location,
    pub bytes: u64,
    pub action: GcAction,
    pub reason: String,
}

/// The garbage collector of one node.
pub struct Gc {
    ctx: StoreContext,
    cfg: GcConfig,
}

impl std::fmt::Debug for Gc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gc").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Gc {
    pub fn new(ctx: StoreContext, cfg: GcConfig) -> Self {
        Self { ctx, cfg }
    }

    /// Decides, for every copy out of service, every unknown cold object and every trash entry, what to do now.
    /// Changes nothing. Blocking (lists the cold tier).
    pub fn plan(&self, now_ms: i64, started_at_ms: i64) -> Result<Vec<GcDecision>> {
        let snapshot = self.ctx.catalog.snapshot();
        let mut leased: HashMap<SegmentId, (String, i64)> = HashMap::new();
        for (lease_id, rec) in self.ctx.catalog.live_leases(now_ms)? {
            for id in rec.segments {
                let e = leased.entry(id).or_insert((lease_id.clone(), rec.expires_at_ms));
                if rec.expires_at_ms > e.1 {
                    *e = (lease_id.clone(), rec.expires_at_ms);
                }
            }
        }
        let oldest_pin = self.ctx.catalog.oldest_pinned_generation();
        let mut out = Vec::new();
        // Why a copy taken out of service at (at_ms, generation) must stay, if it must.
        let hold = |id: &SegmentId, at_ms: i64, generation: u64| -> Option<String> {
            if let Some((lease, until)) = leased.get(id) {
                Some(format!("held by lease {lease} until {until}"))
            } else if let Some(g) = oldest_pin.filter(|g| *g < generation) {
                Some(format!("a reader holds catalog generation {g} (< {generation}, when it left service)"))
            } else if now_ms < at_ms.saturating_add(self.cfg.grace_ms) {
                Some(format!("grace period until {}", at_ms.saturating_add(self.cfg.grace_ms)))
            } else if now_ms < started_at_ms.saturating_add(self.cfg.lease_ttl_ms) {
                Some(format!(
                    "restarted recently: leases from before the restart may be lost; wait until {}",
                    started_at_ms.saturating_add(self.cfg.lease_ttl_ms)
                ))
            } else {
                None
            }
        };
        let mut decide = |m: &SegmentMeta, location: &Location, at_ms: i64, generation: u64, why: String| {
            let (action, reason) = match hold(&m.id, at_ms, generation) {
                Some(reason) => (GcAction::Keep, reason),
                None => (GcAction::Delete, format!("{why}; no lease or reader holds it; grace passed")),
            };
            out.push(GcDecision { id: Some(m.id), location: location.clone(), bytes: m.bytes, action, reason });
        };
        for m in snapshot.segments() {
            match &m.retired {
                Some(r) if m.state == SegmentState::Retired => {
                    let why = format!(
                        "retired at {} by generation {} (replaced by {:?})",
                        r.at_ms,
                        r.generation,
                        r.replaced_by.iter().map(ToString::to_string).collect::<Vec<_>>()
                    );
                    for location in m.all_locations() {
                        decide(m, location, r.at_ms, r.generation, why.clone());
                    }
                }
                _ => {
                    for d in &m.dropped {
                        let why = format!("moved away at {} by generation {}", d.at_ms, d.generation);
                        decide(m, &d.location, d.at_ms, d.generation, why);
                    }
                }
            }
        }
        out.extend(expiries(&snapshot, now_ms));
        out.extend(self.reconcile_cold(&snapshot, now_ms)?);
        out.extend(self.trash_due(now_ms)?);
        Ok(out)
    }

    /// Carries out what [`Gc::plan`] decides: expiries first (one commit, then a new plan), copies to the trash
    /// and one commit removing them, orphans to the trash, trash past retention deleted. Returns every decision.
    pub fn run(&self, now_ms: i64, started_at_ms: i64) -> Result<Vec<GcDecision>> {
        let expired: Vec<GcDecision> =
            self.plan(now_ms, started_at_ms)?.into_iter().filter(|d| d.action == GcAction::Expire).collect();
        if !expired.is_empty() {
            let snapshot = self.ctx.catalog.snapshot();
            let ids: HashSet<SegmentId> = expired.iter().filter_map(|d| d.id).collect();
            let retire = ids.iter().filter_map(|id| snapshot.get(id)).map(|m| {
                let mut r = (**m).clone();
                r.state = SegmentState::Retired;
                r.retired = Some(Retirement { at_ms: now_ms, generation: 0, replaced_by: Vec::new() });
                CatalogChange::Put(r)
            });
            self.ctx.catalog.commit(retire.collect())?;
            for id in &ids {
                info!(segment = %id, "duplicates side segment retired: retention ended");
            }
            metrics::counter!("tierd_gc_expired_duplicates_total").increment(ids.len() as u64);
        }
        let mut decisions = expired;
        decisions.extend(self.plan(now_ms, started_at_ms)?.into_iter().filter(|d| d.action != GcAction::Expire));

        let batch_ms = now_ms;
        let mut gone: HashMap<SegmentId, Vec<Location>> = HashMap::new();
        let snapshot = self.ctx.catalog.snapshot();
        for d in decisions.iter().filter(|d| d.action == GcAction::Delete) {
            let id = d.id.expect("deletions are of catalog copies");
            if let Some(m) = snapshot.get(&id) {
                self.save_record(batch_ms, m)?;
            }
            self.to_trash(batch_ms, &d.location)?;
            self.ctx.failpoints.hit("gc.delete").map_err(|e| StoreError::io(&d.location.path, e))?;
            info!(segment = %id, tier = d.location.tier.label(), location = %d.location.path, bytes = d.bytes, "copy moved to the trash");
            metrics::counter!("tierd_gc_deleted_copies_total", "tier" => d.location.tier.label()).increment(1);
            metrics::counter!("tierd_gc_deleted_bytes_total", "tier" => d.location.tier.label()).increment(d.bytes);
            gone.entry(id).or_default().push(d.location.clone());
        }
        if !gone.is_empty() {
            let mut changes = Vec::new();
            for (id, locations) in gone {
                let Some(m) = snapshot.get(&id) else { continue };
                let mut next = (**m).clone();
                next.locations.retain(|l| !locations.contains(l));
                next.dropped.retain(|d| !locations.contains(&d.location));
                changes.push(CatalogChange::Expect { id, updated_generation: m.updated_generation });
                if next.state == SegmentState::Retired && next.locations.is_empty() && next.dropped.is_empty() {
                    changes.push(CatalogChange::Remove(id));
                } else {
                    changes.push(CatalogChange::Put(next));
                }
            }
            self.ctx.catalog.commit(changes)?;
        }
        for d in decisions.iter().filter(|d| d.action == GcAction::Orphan) {
            self.to_trash(batch_ms, &d.location)?;
            self.ctx.failpoints.hit("gc.orphan").map_err(|e| StoreError::io(&d.location.path, e))?;
            warn!(key = %d.location.path, bytes = d.bytes, "orphaned cold object moved to the trash");
            metrics::counter!("tierd_gc_orphans_total", "tier" => d.location.tier.label()).increment(1);
        }
        for d in decisions.iter().filter(|d| d.action == GcAction::Purge) {
            self.purge(&d.location)?;
            metrics::counter!("tierd_gc_purged_total", "tier" => d.location.tier.label()).increment(1);
        }
        let missing = decisions.iter().filter(|d| d.action == GcAction::Missing).count();
        metrics::gauge!("tierd_cold_objects_missing").set(missing as f64);
        Ok(decisions)
    }

    /// Cold objects under `segments/` against the catalog: orphans (unknown, older than the grace), unknown objects
    /// still young (kept: maybe an upload in progress), and copies live segments need that are not there.
    fn reconcile_cold(&self, snapshot: &crate::CatalogSnapshot, now_ms: i64) -> Result<Vec<GcDecision>> {
        let objects = self.ctx.handle.block_on(self.ctx.cold.list(COLD_SEGMENTS_PREFIX))?;
        let mut known: HashSet<&str> = HashSet::new();
        for m in snapshot.segments() {
            known.extend(m.all_locations().filter(|l| l.tier == Tier::Cold).map(|l| l.path.as_str()));
        }
        let intents = self.ctx.catalog.intents()?;
        known.extend(intents.iter().filter(|i| i.location.tier == Tier::Cold).map(|i| i.location.path.as_str()));
        let mut out = Vec::new();
        let listed: HashSet<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        for o in objects.iter().filter(|o| !known.contains(o.key.as_str())) {
            let old = now_ms >= o.last_modified_ms.saturating_add(self.cfg.grace_ms);
            let (action, reason) = if old {
                (
                    GcAction::Orphan,
                    format!("no catalog record names it; written at {}, past the grace", o.last_modified_ms),
                )
            } else {
                (
                    GcAction::Keep,
                    format!("unknown object written at {}: may be an upload in progress", o.last_modified_ms),
                )
            };
            out.push(GcDecision { id: None, location: Location::cold(&o.key), bytes: o.size, action, reason });
        }
        for m in snapshot.segments().filter(|m| m.is_live()) {
            if let Some(key) = m.cold_key().filter(|k| !listed.contains(k)) {
                error!(segment = %m.id, key, rows = m.rows, "cold copy missing from the object store");
                out.push(GcDecision {
                    id: Some(m.id),
                    location: Location::cold(key),
                    bytes: m.bytes,
                    action: GcAction::Missing,
                    reason: format!("segment {} ({} rows) needs it; the cold tier does not list it", m.id, m.rows),
                });
            }
        }
        Ok(out)
    }

    /// Trash entries of both tiers whose retention has passed.
    fn trash_due(&self, now_ms: i64) -> Result<Vec<GcDecision>> {
        let due = |ms: Option<i64>| ms.is_some_and(|ms| now_ms >= ms.saturating_add(self.cfg.trash_retention_ms));
        let reason = |ms: Option<i64>| format!("in the trash since {}, past the retention", ms.unwrap_or_default());
        let mut out = Vec::new();
        for o in self.ctx.handle.block_on(self.ctx.cold.list(TRASH_PREFIX))? {
            let ms = Layout::trash_batch_of(&o.key);
            if due(ms) {
                out.push(GcDecision {
                    id: None,
                    location: Location::cold(&o.key),
                    bytes: o.size,
                    action: GcAction::Purge,
                    reason: reason(ms),
                });
            }
        }
        let dir = self.ctx.layout.root().join(TRASH_PREFIX);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let ms = name.parse::<i64>().ok();
                if due(ms) {
                    let bytes = dir_bytes(&entry.path());
                    let location = Location::hot(format!("{TRASH_PREFIX}/{name}"));
                    out.push(GcDecision { id: None, location, bytes, action: GcAction::Purge, reason: reason(ms) });
                }
            }
        }
        Ok(out)
    }

    /// Moves one copy to the trash batch `batch_ms`. A copy that is already gone counts as moved (a crash after an
    /// earlier attempt).
    fn to_trash(&self, batch_ms: i64, location: &Location) -> Result<()> {
        let ctx = &self.ctx;
        let to = Layout::trash_path(batch_ms, &location.path);
        match location.tier {
            Tier::Hot => {
                durable::rename_synced(ctx.fs.as_ref(), &ctx.resolve(&location.path)?, &ctx.resolve(&to)?)?;
                Ok(())
            }
            Tier::Cold => {
                match ctx.handle.block_on(ctx.cold.copy(&location.path, &to)) {
                    Ok(()) => {}
                    Err(StoreError::ObjectNotFound { .. }) => return Ok(()),
                    Err(e) => return Err(e),
                }
                ctx.handle.block_on(ctx.cold.delete(&location.path))
            }
        }
    }

    /// Saves a segment's catalog record beside its trashed copies, so an operator can restore it.
    fn save_record(&self, batch_ms: i64, m: &SegmentMeta) -> Result<()> {
        let path = self.ctx.resolve(&Layout::trash_record(batch_ms, m.id))?;
        let dir = path.parent().expect("a record has a directory");
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let json = serde_json::to_vec_pretty(m)
            .map_err(|source| StoreError::CatalogEncode { what: "trash record", source })?;
        std::fs::write(&path, json).map_err(|e| StoreError::io(&path, e))
    }

    fn purge(&self, location: &Location) -> Result<()> {
        match location.tier {
            Tier::Cold => self.ctx.handle.block_on(self.ctx.cold.delete(&location.path)),
            Tier::Hot => {
                let path = self.ctx.resolve(&location.path)?;
                match self.ctx.fs.remove_dir_all(&path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(StoreError::io(&path, e)),
                }
            }
        }
    }
}

/// The live side segments of duplicates whose retention ended, one decision per copy.
fn expiries(snapshot: &crate::CatalogSnapshot, now_ms: i64) -> Vec<GcDecision> {
    let mut out = Vec::new();
    for m in snapshot.segments().filter(|m| m.is_live()) {
        if let Role::Duplicates { of, keep_until_ms } = m.role {
            if now_ms >= keep_until_ms {
                for location in &m.locations {
                    out.push(GcDecision {
                        id: Some(m.id),
                        location: location.clone(),
                        bytes: m.bytes,
                        action: GcAction::Expire,
                        reason: format!(
                            "duplicates removed by the rewrite into {of}, kept until {keep_until_ms}: retention ended"
                        ),
                    });
                }
            }
        }
    }
    out
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    };
    entries.flatten().map(|e| dir_bytes(&e.path())).sum()
}

#[cfg(test)]
mod tests;
