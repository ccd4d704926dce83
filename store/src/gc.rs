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
use std::path::PathBuf;
use std::sync::Arc;

use tierd_policies::gc::{
    ColdObject, GcInputs, GcPolicy, Lease, LeftService, NeededCopy, OutOfService, SideSegment, TrashEntry,
};
use tokio::runtime::Handle;
use tracing::{error, info, warn};

use crate::catalog::{Catalog, CatalogChange, Location, Retirement, Role, SegmentMeta, SegmentState, Tier};
use crate::cold::ColdStore;
use crate::error::{Result, StoreError};
use crate::failpoint::Failpoints;
use crate::layout::{Layout, SegmentId};

/// Where cold segment copies live; everything else under the cold prefix is not reconciled.
pub const COLD_SEGMENTS_PREFIX: &str = "segments";
/// Where deleted copies wait for their final deletion, in both tiers (`DATA_DIR/trash`, `trash/` in the bucket).
pub const TRASH_PREFIX: &str = "trash";

/// The collector's waiting times (grace, lease TTL, trash retention): the GC policy's settings.
pub type GcConfig = GcPolicy;

/// What GC does with one copy (decided by [`GcPolicy`]).
pub use tierd_policies::gc::GcAction;

/// What GC decided for one copy (or trash entry), over the store's segment ids and locations.
pub type GcDecision = tierd_policies::gc::GcDecision<SegmentId, Location>;

/// The garbage collector of one node.
pub struct Gc {
    layout: Layout,
    catalog: Arc<Catalog>,
    cold: Arc<ColdStore>,
    handle: Handle,
    failpoints: Arc<Failpoints>,
    cfg: GcConfig,
}

impl std::fmt::Debug for Gc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gc").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Gc {
    pub fn new(
        layout: Layout,
        catalog: Arc<Catalog>,
        cold: Arc<ColdStore>,
        handle: Handle,
        failpoints: Arc<Failpoints>,
        cfg: GcConfig,
    ) -> Self {
        Self { layout, catalog, cold, handle, failpoints, cfg }
    }

    /// Decides, for every copy out of service, every unknown cold object and every trash entry, what to do now:
    /// gathers what [`GcPolicy::plan`] decides over (one catalog snapshot, the leases, the pins, the listings of
    /// the cold tier and of the trash) and asks it. Changes nothing. Blocking (lists the cold tier).
    pub fn plan(&self, now_ms: i64, started_at_ms: i64) -> Result<Vec<GcDecision>> {
        let snapshot = self.catalog.snapshot();
        let leases = self.catalog.live_leases(now_ms)?.into_iter();
        let leases = leases.map(|(id, rec)| Lease { id, expires_at_ms: rec.expires_at_ms, segments: rec.segments });
        let mut inputs = GcInputs {
            started_at_ms,
            leases: leases.collect(),
            oldest_pinned_generation: self.catalog.oldest_pinned_generation(),
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
            let snapshot = self.catalog.snapshot();
            let ids: HashSet<SegmentId> = expired.iter().filter_map(|d| d.id).collect();
            let retire = ids.iter().filter_map(|id| snapshot.get(id)).map(|m| {
                let mut r = (**m).clone();
                r.state = SegmentState::Retired;
                r.retired = Some(Retirement { at_ms: now_ms, generation: 0, replaced_by: Vec::new() });
                CatalogChange::Put(r)
            });
            self.catalog.commit(retire.collect())?;
            for id in &ids {
                info!(segment = %id, "duplicates side segment retired: retention ended");
            }
            metrics::counter!("tierd_gc_expired_duplicates_total").increment(ids.len() as u64);
        }
        let mut decisions = expired;
        decisions.extend(self.plan(now_ms, started_at_ms)?.into_iter().filter(|d| d.action != GcAction::Expire));

        let trash_dir = format!("{TRASH_PREFIX}/{now_ms}");
        let mut gone: HashMap<SegmentId, Vec<Location>> = HashMap::new();
        let snapshot = self.catalog.snapshot();
        for d in decisions.iter().filter(|d| d.action == GcAction::Delete) {
            let id = d.id.expect("deletions are of catalog copies");
            if let Some(m) = snapshot.get(&id) {
                self.save_record(&trash_dir, m)?;
            }
            self.to_trash(&trash_dir, &d.location)?;
            self.failpoints.hit("gc.delete").map_err(|e| StoreError::io(&d.location.path, e))?;
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
            self.catalog.commit(changes)?;
        }
        for d in decisions.iter().filter(|d| d.action == GcAction::Orphan) {
            self.to_trash(&trash_dir, &d.location)?;
            self.failpoints.hit("gc.orphan").map_err(|e| StoreError::io(&d.location.path, e))?;
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
        let objects = self.handle.block_on(self.cold.list(COLD_SEGMENTS_PREFIX))?;
        inputs.cold_objects = objects
            .into_iter()
            .map(|o| ColdObject { location: Location::cold(o.key), bytes: o.size, written_at_ms: o.last_modified_ms })
            .collect();
        let cold = |l: &&Location| l.tier == Tier::Cold;
        for m in snapshot.segments() {
            inputs.known_cold.extend(m.all_locations().filter(cold).cloned());
        }
        let intents = self.catalog.move_intents()?;
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
        for o in self.handle.block_on(self.cold.list(TRASH_PREFIX))? {
            let since_ms = trash_time(&o.key);
            out.push(TrashEntry { location: Location::cold(o.key), bytes: o.size, since_ms });
        }
        let dir = self.layout.root().join(TRASH_PREFIX);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let since_ms = name.parse::<i64>().ok();
                let bytes = dir_bytes(&entry.path());
                out.push(TrashEntry { location: Location::hot(format!("{TRASH_PREFIX}/{name}")), bytes, since_ms });
            }
        }
        Ok(out)
    }

    /// Moves one copy to the trash. A copy that is already gone counts as moved (a crash after an earlier attempt).
    fn to_trash(&self, trash_dir: &str, location: &Location) -> Result<()> {
        match location.tier {
            Tier::Hot => {
                let from = self.resolve(&location.path)?;
                let to = self.layout.root().join(trash_dir).join(&location.path);
                let parent = to.parent().expect("trash path has a parent");
                std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
                match std::fs::rename(&from, &to) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(StoreError::io(&from, e)),
                }
                for dir in [from.parent(), Some(parent)].into_iter().flatten() {
                    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| StoreError::io(dir, e))?;
                }
                Ok(())
            }
            Tier::Cold => {
                let to = format!("{trash_dir}/{}", location.path);
                match self.handle.block_on(self.cold.copy(&location.path, &to)) {
                    Ok(()) => {}
                    Err(StoreError::ObjectNotFound { .. }) => return Ok(()),
                    Err(e) => return Err(e),
                }
                self.handle.block_on(self.cold.delete(&location.path))
            }
        }
    }

    /// Saves a segment's catalog record beside its trashed copies, so an operator can restore it.
    fn save_record(&self, trash_dir: &str, m: &SegmentMeta) -> Result<()> {
        let dir = self.layout.root().join(trash_dir).join("records");
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let path = dir.join(format!("{}.json", m.id));
        let json = serde_json::to_vec_pretty(m).map_err(|e| StoreError::Catalog(e.to_string()))?;
        std::fs::write(&path, json).map_err(|e| StoreError::io(&path, e))
    }

    fn purge(&self, location: &Location) -> Result<()> {
        match location.tier {
            Tier::Cold => self.handle.block_on(self.cold.delete(&location.path)),
            Tier::Hot => {
                let path = self.resolve(&location.path)?;
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(StoreError::io(&path, e)),
                }
            }
        }
    }

    fn resolve(&self, path: &str) -> Result<PathBuf> {
        self.layout.resolve(path).ok_or_else(|| StoreError::Catalog(format!("bad hot location {path:?}")))
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

/// The time in a trash key `trash/<ms>/...`.
fn trash_time(key: &str) -> Option<i64> {
    key.strip_prefix(TRASH_PREFIX)?.strip_prefix('/')?.split('/').next()?.parse().ok()
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    };
    entries.flatten().map(|e| dir_bytes(&e.path())).sum()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{json, Value};
    use tierd_codecs::columnar::CodecSpec;
    use tierd_codecs::Event;
    use tierd_policies::{ReencodePlanner, RewritePlanner};

    use super::*;
    use crate::clock::ManualClock;
    use crate::hot::{HotConfig, HotTier, IngestBatch};
    use crate::query::{execute, GroupBy, Query};
    use crate::rewrite::Rewriter;

    const T0: i64 = 1_767_225_600_000;

    /// A collector over `memory://` cold storage (and the runtime that drives it).
    fn collector(
        layout: &Layout,
        catalog: &Arc<Catalog>,
        failpoints: &Arc<Failpoints>,
        cfg: GcConfig,
    ) -> (Gc, tokio::runtime::Runtime) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let cold_cfg = crate::cold::ColdConfig { url: "memory://".into(), ..Default::default() };
        let budget = Arc::new(crate::budget::IoBudget::unlimited());
        let cold = Arc::new(ColdStore::open(&cold_cfg, layout.root(), budget, None).unwrap());
        (Gc::new(layout.clone(), catalog.clone(), cold, rt.handle().clone(), failpoints.clone(), cfg), rt)
    }

    fn count(layout: &Layout, snapshot: &crate::CatalogSnapshot) -> u64 {
        let q = Query {
            project: "p".into(),
            from_ms: 0,
            to_ms: i64::MAX,
            event: None,
            filters: vec![],
            group_by: GroupBy::None,
        };
        execute(&crate::read::SegmentSource::hot_only(layout.clone()), snapshot, &q).unwrap().total
    }

    /// Three sealed row segments of project `p`: 30 events, ids (and times) 0..25 then 0..5 again (five re-sends
    /// whose properties say `k = 2`; the first copies say `k = 0`).
    fn three_segments_with_resends(
        failpoints: Failpoints,
    ) -> (tempfile::TempDir, Layout, ManualClock, Arc<Catalog>, Arc<Failpoints>) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let clock = ManualClock::new(T0);
        let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
        let failpoints = Arc::new(failpoints);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let hot = HotTier::start(
                layout.clone(),
                catalog.clone(),
                Arc::new(clock.clone()),
                HotConfig::default(),
                failpoints.clone(),
                Arc::new(|_| {}),
            )
            .unwrap();
            for k in 0..3 {
                let events: Vec<Event> = (0..10)
                    .map(|i| Event {
                        event: "E".into(),
                        // ids (and times) 0..25 then 0..5 again: five re-sends with changed properties
                        time_ms: T0 + (k * 10 + i) % 25,
                        distinct_id: "u".into(),
                        insert_id: format!("{}", (k * 10 + i) % 25),
                        properties: json!({"k": k}).as_object().unwrap().clone(),
                    })
                    .collect();
                hot.append(IngestBatch::encode("p".into(), events)).await.unwrap();
            }
            hot.shutdown().await; // seals
        });
        (dir, layout, clock, catalog, failpoints)
    }

    fn reencode_action(catalog: &Catalog) -> tierd_policies::RewriteAction {
        let stats: Vec<_> = catalog.snapshot().segments().map(|m| m.planner_stats()).collect();
        let planner = ReencodePlanner { output_codec: "zstd-3".into(), max_output_bytes: 1 << 30, min_age_ms: 0 };
        let mut actions = planner.plan(T0, &stats);
        assert_eq!(actions.len(), 1);
        actions.remove(0)
    }

    /// Lossless dedup: the removed copies land in a side segment in the same commit; queries and passes do not
    /// see it; GC keeps it until its retention ends, then retires and deletes it.
    #[test]
    fn removed_duplicates_are_kept_until_their_retention_ends() {
        let (_dir, layout, clock, catalog, failpoints) = three_segments_with_resends(Failpoints::none());
        let rewriter = Rewriter::new(
            layout.clone(),
            catalog.clone(),
            Arc::new(clock.clone()),
            failpoints.clone(),
            Default::default(),
        )
        .keep_duplicates_for(60_000);
        let outcome = rewriter.execute(&reencode_action(&catalog)).unwrap();
        assert_eq!((outcome.rows_after, outcome.duplicates_removed), (25, 5));
        let side_id = outcome.duplicates_segment.expect("a side segment");
        let snapshot = catalog.snapshot();
        let side = snapshot.get(&side_id).unwrap().clone();
        assert_eq!(side.role, Role::Duplicates { of: outcome.outputs[0], keep_until_ms: T0 + 60_000 });
        assert_eq!(side.rows, 5);
        // Exactly the first copies of the re-sent ids: properties k = 0, ids 0..5.
        let mut removed: Vec<(String, Value)> = crate::read::read_events(&layout, &side)
            .unwrap()
            .into_iter()
            .map(|e| (e.event.insert_id.clone(), Value::Object(e.event.properties.clone())))
            .collect();
        removed.sort_by(|a, b| a.0.cmp(&b.0));
        let expected: Vec<(String, Value)> = (0..5).map(|i| (i.to_string(), json!({"k": 0}))).collect();
        assert_eq!(removed, expected);
        // Queries see the 25 events, lookups only the output; the side segment is listed on its own.
        assert_eq!(count(&layout, &snapshot), 25);
        let ids: Vec<SegmentId> = snapshot.lookup("p", 0, i64::MAX).iter().map(|m| m.id).collect();
        assert_eq!(ids, outcome.outputs);
        let dups: Vec<SegmentId> = snapshot.lookup_duplicates("p", 0, i64::MAX).iter().map(|m| m.id).collect();
        assert_eq!(dups, vec![side_id]);

        let cfg = GcConfig { grace_ms: 0, lease_ttl_ms: 0, trash_retention_ms: 0 };
        let (gc, _rt) = collector(&layout, &catalog, &failpoints, cfg);
        let early = gc.run(T0 + 59_999, 0).unwrap();
        assert!(early.iter().all(|d| d.id != Some(side_id)), "{early:?}");
        assert!(layout.resolve(side.hot_path().unwrap()).unwrap().exists());
        let due = gc.run(T0 + 60_000, 0).unwrap();
        let expired: Vec<_> = due.iter().filter(|d| d.id == Some(side_id)).collect();
        assert_eq!(expired.len(), 2, "expired, then deleted past a zero grace: {due:?}");
        assert!(expired[0].action == GcAction::Expire && expired[1].action == GcAction::Delete, "{expired:?}");
        assert!(!layout.resolve(side.hot_path().unwrap()).unwrap().exists());
        assert!(catalog.snapshot().get(&side_id).is_none());
        assert_eq!(count(&layout, &catalog.snapshot()), 25);
    }

    /// A rewrite that fails after writing its output and side segment removes both and leaves the inputs live.
    #[test]
    fn a_failed_lossless_rewrite_leaves_no_file_behind() {
        for point in ["rewrite.intent", "rewrite.write", "rewrite.verify"] {
            let fp = Failpoints::parse(&format!("{point}=error@2")).unwrap();
            let (_dir, layout, clock, catalog, failpoints) = three_segments_with_resends(fp);
            let before: Vec<_> = catalog.snapshot().segments().cloned().collect();
            let rewriter =
                Rewriter::new(layout.clone(), catalog.clone(), Arc::new(clock.clone()), failpoints, Default::default())
                    .keep_duplicates_for(60_000);
            // The failpoint fires on its second hit: the side segment's step, after the output's succeeded.
            let err = rewriter.execute(&reencode_action(&catalog)).unwrap_err();
            assert!(err.to_string().contains(point), "{point}: {err}");
            let after: Vec<_> = catalog.snapshot().segments().cloned().collect();
            assert_eq!(before, after, "{point}");
            assert!(catalog.intents().unwrap().is_empty(), "{point}");
            let files = std::fs::read_dir(layout.hot_dir().join("p")).unwrap().count();
            assert_eq!(files, before.len(), "{point}: only the inputs remain");
            assert_eq!(count(&layout, &catalog.snapshot()), 25);
        }
    }

    /// A query that pinned its snapshot before a rewrite keeps reading the retired inputs, GC keeps them while the
    /// pin or a lease lives, and deletes them once neither does.
    #[test]
    fn retired_segments_outlive_pins_and_leases() {
        let (_dir, layout, clock, catalog, failpoints) = three_segments_with_resends(Failpoints::none());
        let before = catalog.pin();
        assert_eq!(count(&layout, &before), 25);
        let stats: Vec<_> = catalog.snapshot().segments().map(|m| m.planner_stats()).collect();
        let planner = ReencodePlanner { output_codec: "zstd-3".into(), max_output_bytes: 1 << 30, min_age_ms: 0 };
        let actions = planner.plan(T0, &stats);
        assert_eq!(actions.len(), 1);
        let rewriter = Rewriter::new(
            layout.clone(),
            catalog.clone(),
            Arc::new(clock.clone()),
            failpoints.clone(),
            CodecSpec::default(),
        );
        let outcome = rewriter.execute(&actions[0]).unwrap();
        assert_eq!((outcome.rows_before, outcome.rows_after), (30, 25));
        let input = outcome.inputs[0];
        // Both views give the same answer: the pinned one reads the retired input, the new one the output.
        assert_eq!(count(&layout, &catalog.snapshot()), 25);
        assert_eq!(count(&layout, &before), 25);

        let cfg = GcConfig { grace_ms: 0, lease_ttl_ms: 0, trash_retention_ms: 3_600_000 };
        let (gc, _rt) = collector(&layout, &catalog, &failpoints, cfg);
        let decide = |now| gc.plan(now, 0).unwrap();
        let d = decide(T0);
        assert!(d.iter().all(|d| d.action == GcAction::Keep && d.reason.contains("reader")), "{d:?}");
        let lease = catalog.grant_lease(T0, 60_000, 1, vec![input]).unwrap();
        drop(before);
        let d = decide(T0);
        let held = d.iter().find(|d| d.id == Some(input)).unwrap();
        assert!(held.action == GcAction::Keep && held.reason.contains(&lease.id), "{held:?}");
        // Grace and the restart rule hold it too.
        let graced = collector(&layout, &catalog, &failpoints, GcConfig { grace_ms: 3_600_000, ..cfg }).0;
        let graced = graced.plan(T0 + 60_001, 0).unwrap();
        assert!(graced.iter().all(|d| d.action == GcAction::Keep && d.reason.contains("grace")), "{graced:?}");
        let fresh = collector(&layout, &catalog, &failpoints, GcConfig { lease_ttl_ms: 10_000, ..cfg }).0;
        let fresh = fresh.plan(T0 + 60_001, T0 + 60_000).unwrap();
        assert!(fresh.iter().all(|d| d.action == GcAction::Keep && d.reason.contains("restarted")), "{fresh:?}");
        // Once the lease expired: to the trash, files gone from hot/, records saved, answer unchanged.
        let done = gc.run(T0 + 60_001, 0).unwrap();
        let deleted: Vec<_> = done.iter().filter(|d| d.action == GcAction::Delete).collect();
        assert_eq!(deleted.len(), outcome.inputs.len(), "{done:?}");
        let trash = layout.root().join(format!("{TRASH_PREFIX}/{}", T0 + 60_001));
        for d in &deleted {
            assert!(!layout.resolve(&d.location.path).unwrap().exists());
            assert!(trash.join(&d.location.path).exists(), "in the trash: {}", d.location.path);
            let id = d.id.unwrap();
            assert!(trash.join(format!("records/{id}.json")).exists());
            assert!(catalog.snapshot().get(&id).is_none());
        }
        assert_eq!(count(&layout, &catalog.snapshot()), 25);
        // The trash is purged once its retention has passed, not before.
        let kept = gc.run(T0 + 60_001 + 3_599_999, 0).unwrap();
        assert!(kept.iter().all(|d| d.action != GcAction::Purge), "{kept:?}");
        let purged = gc.run(T0 + 60_001 + 3_600_000, 0).unwrap();
        assert_eq!(purged.iter().filter(|d| d.action == GcAction::Purge).count(), 1, "{purged:?}");
        assert!(!trash.exists());
    }
}
