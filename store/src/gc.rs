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
//!
//! Erasure (user deletions): a retired segment marked `erase` ([`Retirement::erase`]) may hold rows a deletion
//! request removes. Its copies wait for the same leases, pins, grace and restart rule, then either skip the trash
//! (erasure retention 0, the default: `gc.erase` after each copy deleted for good) or go to it like any copy, and
//! their trashed copies and saved record are deleted for good once the erasure retention has passed
//! (`gc.erase_trash`), before their batch's own retention. The cold cache's blocks of a cold object are dropped
//! before the object is deleted or trashed, and each run drops the blocks of objects the catalog no longer names.

use std::collections::{HashMap, HashSet};

use tierd_policies::gc::{
    ColdObject, ErasedTrash, GcInputs, GcPolicy, Lease, LeftService, NeededCopy, OutOfService, SideSegment, TrashEntry,
};
use tracing::{error, info, warn};

use crate::cache::BlockCache;
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
    /// The cold cache whose blocks of deleted objects are dropped (none: nothing cached).
    cache: Option<std::sync::Arc<BlockCache>>,
}

impl std::fmt::Debug for Gc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gc").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Gc {
    pub fn new(ctx: StoreContext, cfg: GcConfig) -> Self {
        Self { ctx, cfg, cache: None }
    }

    /// Drops `cache`'s blocks of the cold objects this collector deletes (see the module documentation).
    pub fn with_cache(mut self, cache: std::sync::Arc<BlockCache>) -> Self {
        self.cache = Some(cache);
        self
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
        inputs.erased_trash = self.erased_trash(&inputs.trash)?;
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
    ///
    /// Below the catalog's headroom (`catalog.min_free_bytes`) only what frees space without writing to the catalog
    /// is done, trash entries past their retention deleted for good, and the run then fails with
    /// [`StoreError::DiskReserve`]: moving copies to the trash frees nothing and would need a commit.
    pub fn run(&self, now_ms: i64, started_at_ms: i64) -> Result<Vec<GcDecision>> {
        self.run_until(now_ms, started_at_ms, &|| false)
    }

    /// [`Gc::run`], stopping between two copies once `stop` answers true (the daemon is shutting down): the copies
    /// already deleted or moved to the trash are committed, the rest is left for the next run, and the run fails
    /// with [`StoreError::Stopped`] saying how far it got.
    pub fn run_until(&self, now_ms: i64, started_at_ms: i64, stop: &dyn Fn() -> bool) -> Result<Vec<GcDecision>> {
        if let Err(e) = self.ctx.catalog.check_headroom("gc") {
            let mut purged = 0;
            for d in self.plan(now_ms, started_at_ms)? {
                if d.action == GcAction::Purge && d.id.is_none() {
                    self.purge(&d.location)?;
                    metrics::counter!("tierd_gc_purged_total", "tier" => d.location.tier.label()).increment(1);
                    purged += 1;
                }
            }
            warn!(purged, error = %e, "disk full: gc only purged trash past its retention");
            let StoreError::DiskReserve(why) = e else { return Err(e) };
            return Err(StoreError::DiskReserve(format!("{why} (gc purged {purged} trash entries past retention)")));
        }
        let expired: Vec<GcDecision> =
            self.plan(now_ms, started_at_ms)?.into_iter().filter(|d| d.action == GcAction::Expire).collect();
        if !expired.is_empty() {
            let snapshot = self.ctx.catalog.snapshot();
            let ids: HashSet<SegmentId> = expired.iter().filter_map(|d| d.id).collect();
            let retire = ids.iter().filter_map(|id| snapshot.get(id)).map(|m| {
                let mut r = (**m).clone();
                r.state = SegmentState::Retired;
                r.retired = Some(Retirement { at_ms: now_ms, generation: 0, replaced_by: Vec::new(), erase: false });
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
        let acting = decisions
            .iter()
            .filter(|d| !matches!(d.action, GcAction::Keep | GcAction::Missing | GcAction::Expire))
            .count();
        let mut done = 0usize;
        let mut stopped = false;
        let mut stop_before = |done: &mut usize| {
            stopped = stopped || stop();
            *done += usize::from(!stopped);
            stopped
        };
        for d in decisions.iter().filter(|d| d.action == GcAction::Erase) {
            if stop_before(&mut done) {
                break;
            }
            let id = d.id.expect("erasures are of catalog copies");
            self.drop_cached(&d.location);
            self.ctx.delete_copy(&d.location)?;
            self.ctx.failpoints.hit("gc.erase").map_err(|e| StoreError::io(&d.location.path, e))?;
            info!(segment = %id, tier = d.location.tier.label(), location = %d.location.path, bytes = d.bytes,
                "copy erased: deleted for good without the trash (it may hold rows a deletion removes)");
            metrics::counter!("tierd_gc_erased_copies_total", "tier" => d.location.tier.label()).increment(1);
            metrics::counter!("tierd_gc_erased_bytes_total", "tier" => d.location.tier.label()).increment(d.bytes);
            gone.entry(id).or_default().push(d.location.clone());
        }
        for d in decisions.iter().filter(|d| d.action == GcAction::Delete) {
            if stop_before(&mut done) {
                break;
            }
            let id = d.id.expect("deletions are of catalog copies");
            if let Some(m) = snapshot.get(&id) {
                self.save_record(batch_ms, m)?;
            }
            self.drop_cached(&d.location);
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
            if stop_before(&mut done) {
                break;
            }
            self.to_trash(batch_ms, &d.location)?;
            self.ctx.failpoints.hit("gc.orphan").map_err(|e| StoreError::io(&d.location.path, e))?;
            warn!(key = %d.location.path, bytes = d.bytes, "orphaned cold object moved to the trash");
            metrics::counter!("tierd_gc_orphans_total", "tier" => d.location.tier.label()).increment(1);
        }
        let mut erased_records: HashSet<(i64, SegmentId)> = HashSet::new();
        for d in decisions.iter().filter(|d| d.action == GcAction::Purge) {
            if stop_before(&mut done) {
                break;
            }
            match d.id {
                None => {
                    self.purge(&d.location)?;
                    metrics::counter!("tierd_gc_purged_total", "tier" => d.location.tier.label()).increment(1);
                }
                Some(id) => {
                    // One trashed copy of an erased segment; its record goes once its copies are gone.
                    purge_trashed_copy(&self.ctx, &d.location)?;
                    self.ctx.failpoints.hit("gc.erase_trash").map_err(|e| StoreError::io(&d.location.path, e))?;
                    info!(segment = %id, tier = d.location.tier.label(), location = %d.location.path,
                        "trashed copy of an erased segment deleted for good (erasure retention passed)");
                    metrics::counter!("tierd_gc_erased_trash_total", "tier" => d.location.tier.label()).increment(1);
                    if let Some(batch_ms) = Layout::trash_batch_of(&d.location.path) {
                        erased_records.insert((batch_ms, id));
                    }
                }
            }
        }
        for (batch_ms, id) in erased_records {
            purge_trashed_record(&self.ctx, batch_ms, id)?;
        }
        if let Some(cache) = &self.cache {
            // Blocks of objects no record names any more: deleted above, or before a crash cut a run short.
            let snapshot = self.ctx.catalog.snapshot();
            let known: Vec<&Location> = snapshot.segments().flat_map(|m| m.all_locations()).collect();
            cache.retain_objects(known.iter().filter(|l| l.tier == Tier::Cold).map(|l| l.path.as_str()));
        }
        let missing = decisions.iter().filter(|d| d.action == GcAction::Missing).count();
        metrics::gauge!("tierd_cold_objects_missing").set(missing as f64);
        if stopped {
            info!(done, planned = acting, "gc stopped between two copies: the daemon is shutting down");
            return Err(StoreError::Stopped(format!(
                "gc carried out {done} of {acting} planned actions; the rest is left for the next run"
            )));
        }
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

    /// The trashed copies of erased segments: every saved record marked `erase` in a hot trash batch, each copy it
    /// lists that is still there (a hot file in the batch, a cold object the trash listing holds).
    fn erased_trash(&self, trash: &[TrashEntry<Location>]) -> Result<Vec<ErasedTrash<SegmentId, Location>>> {
        let cold: HashMap<&str, u64> = trash
            .iter()
            .filter(|t| t.location.tier == Tier::Cold)
            .map(|t| (t.location.path.as_str(), t.bytes))
            .collect();
        let mut out = Vec::new();
        for (batch_ms, records) in crate::trash::saved_records(&self.ctx)? {
            for saved in records.into_iter().filter(|m| m.retired.as_ref().is_some_and(|r| r.erase)) {
                for location in saved.all_locations() {
                    let path = Layout::trash_path(batch_ms, &location.path);
                    let present = match location.tier {
                        Tier::Hot => self.ctx.resolve(&path)?.is_file(),
                        Tier::Cold => cold.contains_key(path.as_str()),
                    };
                    if present {
                        let location = Location { tier: location.tier, path };
                        out.push(ErasedTrash { id: saved.id, location, bytes: saved.bytes, since_ms: batch_ms });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Drops the cold cache's blocks of a cold copy about to be deleted.
    fn drop_cached(&self, location: &Location) {
        if let (Some(cache), Tier::Cold) = (&self.cache, location.tier) {
            cache.purge_object(&location.path);
        }
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
                    // The trash directory fsynced: a purged entry (maybe erased data) does not come back.
                    Ok(()) => durable::sync_parent(self.ctx.fs.as_ref(), &path),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(StoreError::io(&path, e)),
                }
            }
        }
    }
}

/// Deletes one trashed copy for good (a hot file under `DATA_DIR/trash`, its directory fsynced; or a cold object
/// under `trash/`). Absent is fine.
pub(crate) fn purge_trashed_copy(ctx: &StoreContext, location: &Location) -> Result<()> {
    ctx.delete_copy(location)
}

/// Deletes a trash batch's saved record of segment `id` (its directory fsynced), once its copies are gone.
pub(crate) fn purge_trashed_record(ctx: &StoreContext, batch_ms: i64, id: SegmentId) -> Result<()> {
    durable::remove_synced(ctx.fs.as_ref(), &ctx.resolve(&Layout::trash_record(batch_ms, id))?).map(|_| ())
}

/// Every copy that a committed change took out of service: all copies of a retired segment, and the copies moves
/// dropped from the others.
fn out_of_service(snapshot: &crate::CatalogSnapshot) -> Vec<OutOfService<SegmentId, Location>> {
    let mut out = Vec::new();
    for m in snapshot.segments() {
        let copy = |location: &Location, at_ms, generation, cause, erase| OutOfService {
            id: m.id,
            location: location.clone(),
            bytes: m.bytes,
            at_ms,
            generation,
            cause,
            erase,
        };
        match &m.retired {
            Some(r) if m.state == SegmentState::Retired => {
                for location in m.all_locations() {
                    let cause = LeftService::Retired { replaced_by: r.replaced_by.clone() };
                    out.push(copy(location, r.at_ms, r.generation, cause, r.erase));
                }
            }
            _ => out
                .extend(m.dropped.iter().map(|d| copy(&d.location, d.at_ms, d.generation, LeftService::Moved, false))),
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
