//! Garbage collection: the only code that deletes segment data, in the hot directory and in the cold tier.
//!
//! A copy of a segment (a hot file or a cold object) is garbage when it was taken out of service by a committed
//! catalog change: its segment was retired by a rewrite (every copy), or a move dropped it (`dropped`). It is
//! deleted only when all of these hold, and the reason for keeping it otherwise is reported (`tierd pass run gc
//! --dry-run` lists both). The decision is pure and lives in [`tierd_policies::gc`] (with its property tests);
//! this module gathers its inputs and carries its decisions out:
//! - no unexpired lease lists its segment (leases are what query nodes hold between a lookup and their reads);
//! - no in-process reader still holds a snapshot older than the change (`Catalog::pin`);
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
//! intent names is an orphan (an upload of a crashed move); once older than the grace period it goes to the
//! trash. A copy a live segment needs that is not listed is reported loudly (`missing`, an error log and the
//! `tierd_cold_objects_missing` gauge), never "repaired" by forgetting it.
//!
//! Side segments of removed duplicates ([`Role::Duplicates`]) are kept until their `keep_until_ms`; a run past it
//! first retires them (one commit), after which they follow the rules above like any retired segment.

use std::collections::{HashMap, HashSet};

use tierd_policies::gc::{
    ColdObject, GcInputs, GcPolicy, Lease, LeftService, NeededCopy, OutOfService, SideSegment, TrashEntry,
};
use tracing::{error, info, warn};

use crate::catalog::{CatalogChange, Retirement, Role, SegmentMeta, SegmentState};
use crate::context::StoreContext;
use crate::durable;
use crate::error::{Result, StoreError};
use crate::layout::{Layout, Location, SegmentId, Tier};
pub use crate::layout::{COLD_SEGMENTS_PREFIX, TRASH_PREFIX};

/// The collector's waiting times (grace, lease TTL, trash retention): the GC policy's settings.
pub type GcConfig = GcPolicy;

/// What GC does with one copy (decided by [`GcPolicy`]).
pub use tierd_policies::gc::GcAction;

/// What GC decided for one copy (or trash entry), over the store's segment ids and locations.
pub type GcDecision = tierd_policies::gc::GcDecision<SegmentId, Location>;

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

    /// Decides, for every copy out of service, every unknown cold object and every trash entry, what to do now:
    /// gathers what [`GcPolicy::plan`] decides over (one catalog snapshot, the leases, the pins, the listings of
    /// the cold tier and of the trash) and asks it. Changes nothing. Blocking (lists the cold tier).
    pub fn plan(&self, now_ms: i64, started_at_ms: i64) -> Result<Vec<GcDecision>> {
        let snapshot = self.ctx.catalog.snapshot();
        let leases = self.ctx.catalog.live_leases(now_ms)?.into_iter();
        let leases = leases.map(|(id, rec)| Lease { id, expires_at_ms: rec.expires_at_ms, segments: rec.segments });
        let mut inputs = GcInputs {
            started_at_ms,
            leases: leases.collect(),
            oldest_pinned_generation: self.ctx.catalog.oldest_pinned_generation(),
            out_of_service: out_of_service(&snapshot),
            side_segments: side_segments(&snapshot),
            ..GcInputs::default()
        };
        self.list_cold(&snapshot, &mut inputs)?;
        inputs.trash = self.trash_entries()?;
        let decisions = self.cfg.plan(now_ms, &inputs);
        for d in decisions.iter().filter(|d| d.action == GcAction::Missing) {
            if let Some(m) = d.id.and_then(|id| snapshot.get(&id)) {
                let key = d.location.path.as_str();
                error!(segment = %m.id, key, rows = m.rows, "cold copy missing from the object store");
            }
        }
        Ok(decisions)
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

    /// What reconciling the cold tier needs: the objects listed under `segments/`, the cold locations the catalog
    /// and the move intents name, and the cold copies live segments need.
    fn list_cold(&self, snapshot: &crate::CatalogSnapshot, inputs: &mut GcInputs<SegmentId, Location>) -> Result<()> {
        let objects = self.ctx.handle.block_on(self.ctx.cold.list(COLD_SEGMENTS_PREFIX))?;
        inputs.cold_objects = objects
            .into_iter()
            .map(|o| ColdObject { location: Location::cold(o.key), bytes: o.size, written_at_ms: o.last_modified_ms })
            .collect();
        let cold = |l: &&Location| l.tier == Tier::Cold;
        for m in snapshot.segments() {
            inputs.known_cold.extend(m.all_locations().filter(cold).cloned());
        }
        let intents = self.ctx.catalog.intents()?;
        inputs.known_cold.extend(intents.into_iter().map(|i| i.location).filter(|l| l.tier == Tier::Cold));
        for m in snapshot.segments().filter(|m| m.is_live()) {
            if let Some(key) = m.cold_key() {
                let location = Location::cold(key);
                inputs.needed_cold.push(NeededCopy { id: m.id, location, bytes: m.bytes, rows: m.rows });
            }
        }
        Ok(())
    }

    /// The trash entries of both tiers: cold objects under `trash/`, then the hot trash directories.
    fn trash_entries(&self) -> Result<Vec<TrashEntry<Location>>> {
        let mut out = Vec::new();
        for o in self.ctx.handle.block_on(self.ctx.cold.list(TRASH_PREFIX))? {
            let since_ms = Layout::trash_batch_of(&o.key);
            out.push(TrashEntry { location: Location::cold(o.key), bytes: o.size, since_ms });
        }
        let dir = self.ctx.layout.trash_dir();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let since_ms = name.parse::<i64>().ok();
                let bytes = dir_bytes(&entry.path());
                out.push(TrashEntry { location: Location::hot(Layout::trash_entry(&name)), bytes, since_ms });
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

    /// Saves a segment's catalog record beside its trashed copies, durably (before any copy moves), so an operator
    /// can restore it. A segment with copies on both tiers is saved once per batch: the record is the same.
    fn save_record(&self, batch_ms: i64, m: &SegmentMeta) -> Result<()> {
        let path = self.ctx.resolve(&Layout::trash_record(batch_ms, m.id))?;
        let json = serde_json::to_vec_pretty(m)
            .map_err(|source| StoreError::CatalogEncode { what: "trash record", source })?;
        match durable::create_new_synced(self.ctx.fs.as_ref(), &path, &json) {
            Ok(_) => Ok(()),
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
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

/// Every copy that a committed change took out of service: all copies of a retired segment, and the copies moves
/// dropped from the others.
fn out_of_service(snapshot: &crate::CatalogSnapshot) -> Vec<OutOfService<SegmentId, Location>> {
    let mut out = Vec::new();
    for m in snapshot.segments() {
        let copy = |location: &Location, at_ms, generation, cause| OutOfService {
            id: m.id,
            location: location.clone(),
            bytes: m.bytes,
            at_ms,
            generation,
            cause,
        };
        match &m.retired {
            Some(r) if m.state == SegmentState::Retired => {
                for location in m.all_locations() {
                    let cause = LeftService::Retired { replaced_by: r.replaced_by.clone() };
                    out.push(copy(location, r.at_ms, r.generation, cause));
                }
            }
            _ => out.extend(m.dropped.iter().map(|d| copy(&d.location, d.at_ms, d.generation, LeftService::Moved))),
        }
    }
    out
}

/// The live side segments of duplicates, with their retention ends.
fn side_segments(snapshot: &crate::CatalogSnapshot) -> Vec<SideSegment<SegmentId, Location>> {
    let mut out = Vec::new();
    for m in snapshot.segments().filter(|m| m.is_live()) {
        if let Role::Duplicates { of, keep_until_ms } = m.role {
            out.push(SideSegment { id: m.id, of, locations: m.locations.clone(), bytes: m.bytes, keep_until_ms });
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
