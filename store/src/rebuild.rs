//! Rebuilding the catalog from the segment files (`tierd catalog rebuild`).
//!
//! The sled catalog is the only index of what exists; losing it must not mean losing the store. Every segment file
//! describes itself (a row segment's header and checksummed frames; a Parquet footer's `tierd.*` keys, and since
//! issue 12 the `tierd.lineage` of a rewrite's output: the inputs it retired, its role, whether a user deletion
//! retired them), so a stopped node's catalog can be written anew from the hot directory and the cold tier:
//!
//! 1. refuse while a daemon holds the data directory (sled's lock on `catalog/db`), and, without `force`, while the
//!    catalog still opens with records in it;
//! 2. read every file under `hot/` and every object under `segments/` whole, and take what it says about itself
//!    ([`scan`]): a row segment up to its last whole checksummed record (a torn tail is cut, as recovery cuts
//!    one, after the whole file is kept in quarantine), a Parquet file decoded in full;
//! 3. decide ([`decide`], pure): live or superseded (by the outputs that list it), the serving copy per tier;
//! 4. quarantine what cannot be used, with the reason: hot files to `quarantine/<ms>/...`, cold objects copied to
//!    `quarantine/<ms>/<key>` in the bucket, then deleted (never deleted without a kept copy);
//! 5. write the records into a fresh sled directory (one commit), then swap it in: `catalog` renamed to
//!    `catalog.broken-<ms>` (kept, never deleted), the new directory renamed to `catalog`, the data directory
//!    fsynced after each rename.
//!
//! What the files cannot say is lost with the old catalog: deletion requests (the `deletions` tree), leases, read
//! heat, pending intents (their copies are found as files and judged like any other), and which segments a filtered
//! rewrite retired whole with no output (they come back live; retention's read cutoff still hides their expired
//! rows, and its next pass retires them again).

mod decide;
mod scan;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tracing::{info, warn};

pub use decide::{decide, Decision, FoundCopy, Rejected, SegmentFate};
pub use scan::{examine, FileFacts};

use crate::catalog::{Catalog, CatalogChange, DroppedLocation, Placement, Retirement, SegmentMeta, SegmentState};
use crate::clock::Clock;
use crate::cold::ColdStore;
use crate::durable::{self, HotFs, OsFs};
use crate::error::{Result, StoreError};
use crate::layout::{Layout, Location, SegmentId, Tier, COLD_SEGMENTS_PREFIX};

/// Where quarantined cold objects are copied, in the bucket (outside `segments/`, which gc reconciles).
pub const COLD_QUARANTINE_PREFIX: &str = "quarantine";

/// What a rebuild found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RebuildReport {
    pub catalog: PathBuf,
    /// Where the old catalog directory was kept (none when there was none).
    pub old_catalog: Option<PathBuf>,
    pub generation: u64,
    pub hot_files: usize,
    pub cold_objects: usize,
    /// Segments by `state/placement` (`sealed/hot`, `retired/cold`, ...).
    pub segments: BTreeMap<String, usize>,
    /// Side segments of removed duplicates among them.
    pub side_segments: usize,
    /// Copies recorded, by tier: serving (`locations`) and dropped.
    pub copies: BTreeMap<String, usize>,
    pub dropped_copies: BTreeMap<String, usize>,
    /// Superseded segments and what superseded them.
    pub superseded: Vec<(SegmentId, Vec<SegmentId>)>,
    /// Inputs claimed by several outputs: kept live.
    pub contested: Vec<(SegmentId, Vec<SegmentId>)>,
    /// Files not used: `tier:path`, where they are now, why.
    pub quarantined: Vec<Quarantined>,
    /// Row segments cut back to their last whole record: `path`, bytes cut.
    pub tails_cut: Vec<(String, u64)>,
    /// Parquet files without lineage (written before it was recorded): they supersede nothing.
    pub legacy_files: usize,
    /// Rows (stored copies of events) of live data segments, of live side segments, of superseded segments.
    pub rows_live: u64,
    pub rows_side: u64,
    pub rows_superseded: u64,
}

/// A file the rebuild did not use.
#[derive(Debug, Clone, Serialize)]
pub struct Quarantined {
    pub location: String,
    pub moved_to: String,
    pub reason: String,
}

/// Rebuilds the catalog of the stopped node at `layout` from its hot files and the cold tier `cold` (see the module
/// documentation). Blocking: drives `cold` through `handle`, so call it from outside the runtime.
pub fn rebuild(
    layout: &Layout,
    cold: &ColdStore,
    handle: &tokio::runtime::Handle,
    clock: &dyn Clock,
    force: bool,
) -> Result<RebuildReport> {
    check_catalog(layout, force)?;
    let _lock = lock_catalog(layout)?;
    let now = clock.now_ms();
    let mut report = RebuildReport::default();
    let mut facts: BTreeMap<Location, FileFacts> = BTreeMap::new();
    let mut refused: Vec<(Location, String)> = Vec::new();

    for (location, path) in hot_files(layout)? {
        report.hot_files += 1;
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        match examine(&location, &bytes) {
            Ok(f) => {
                if f.torn_tail > 0 {
                    // Keep the whole file, then cut it to its last whole record, as recovery cuts a tail.
                    let copy = layout.quarantine_dir().join(now.to_string()).join(&location.path);
                    durable::create_new_synced(&OsFs, &copy, &bytes)?;
                    durable::truncate_synced(&OsFs, &path, f.copy.bytes)?;
                    warn!(path = %location.path, cut = f.torn_tail, kept = %copy.display(), "row segment tail cut");
                    report.tails_cut.push((location.path.clone(), f.torn_tail));
                }
                facts.insert(location, f);
            }
            Err(reason) => refused.push((location, reason)),
        }
    }
    let objects = handle.block_on(cold.list(COLD_SEGMENTS_PREFIX))?;
    for object in objects {
        report.cold_objects += 1;
        let location = Location::cold(object.key.clone());
        let bytes = handle.block_on(cold.get(&object.key))?;
        match examine(&location, &bytes) {
            Ok(f) => {
                facts.insert(location, f);
            }
            Err(reason) => refused.push((location, reason)),
        }
    }

    let copies: Vec<FoundCopy> = facts.values().map(|f| f.copy.clone()).collect();
    let decision = decide(&copies);
    refused.extend(decision.rejected.iter().map(|r| (r.location.clone(), r.reason.clone())));
    for (location, reason) in refused {
        let moved_to = quarantine(layout, cold, handle, now, &location)?;
        warn!(location = %location.path, tier = location.tier.label(), %moved_to, %reason, "file quarantined");
        report.quarantined.push(Quarantined {
            location: format!("{}:{}", location.tier.label(), location.path),
            moved_to,
            reason,
        });
    }

    let records = records(&decision, &facts, now, &mut report);
    let (catalog, old) = swap_in(layout, now, records, &mut report)?;
    report.catalog = catalog;
    report.old_catalog = old;
    report.contested = decision.contested;
    info!(segments = ?report.segments, quarantined = report.quarantined.len(), "catalog rebuilt");
    Ok(report)
}

/// Refuses while the catalog opens with records in it (unless `force`) and while a daemon holds it.
fn check_catalog(layout: &Layout, force: bool) -> Result<()> {
    let dir = layout.catalog_dir();
    if !dir.exists() {
        return Ok(());
    }
    match Catalog::open(&dir) {
        Ok(catalog) => {
            let snapshot = catalog.snapshot();
            if snapshot.generation() > 0 && !force {
                return Err(StoreError::RebuildRefused(format!(
                    "the catalog in {} opens (generation {}, {} segments): a rebuild would lose its deletion \
                     requests, leases and read heat; give --force to rebuild it anyway",
                    dir.display(),
                    snapshot.generation(),
                    snapshot.segments().count()
                )));
            }
            Ok(())
        }
        Err(e) if is_locked(&e) => Err(daemon_running(&dir)),
        Err(e) => {
            info!(error = %e, "the catalog does not open: rebuilding it");
            Ok(())
        }
    }
}

/// Whether opening the catalog failed because another process (a running daemon) holds sled's lock.
pub fn is_locked(e: &StoreError) -> bool {
    matches!(e, StoreError::Catalog { source: sled::Error::Io(io), .. }
        if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("could not acquire lock"))
}

fn daemon_running(dir: &Path) -> StoreError {
    StoreError::RebuildRefused(format!(
        "the catalog in {} is locked: a tierd daemon is running on this data directory; stop it first",
        dir.display()
    ))
}

/// The lock sled takes on `catalog/db` (flock), held for the whole rebuild so no daemon starts meanwhile. A sled
/// opened and dropped just before by this process may hold it a moment longer: retried for a second.
fn lock_catalog(layout: &Layout) -> Result<Option<std::fs::File>> {
    use fs4::fs_std::FileExt;
    let db = layout.catalog_dir().join("db");
    let file = match std::fs::File::open(&db) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(&db, e)),
    };
    for _ in 0..50 {
        if file.try_lock_exclusive().map_err(|e| StoreError::io(&db, e))? {
            return Ok(Some(file));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(daemon_running(&layout.catalog_dir()))
}

/// Every file under `hot/`: its location (relative to the data directory) and path.
fn hot_files(layout: &Layout) -> Result<Vec<(Location, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![layout.hot_dir()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io(&dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            let path = entry.path();
            if entry.file_type().map_err(|e| StoreError::io(&path, e))?.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(layout.root()).expect("under the data dir").to_string_lossy().into_owned();
            out.push((Location::hot(rel), path));
        }
    }
    out.sort();
    Ok(out)
}

/// Takes a file out of service, keeping it: a hot file renamed under `quarantine/<ms>/`, a cold object copied to
/// `quarantine/<ms>/<key>` in the bucket and then deleted. Returns where it is now.
fn quarantine(
    layout: &Layout,
    cold: &ColdStore,
    handle: &tokio::runtime::Handle,
    now: i64,
    location: &Location,
) -> Result<String> {
    let to = format!("{now}/{}", location.path);
    match location.tier {
        Tier::Hot => {
            let from = layout.root().join(&location.path);
            let dest = layout.quarantine_dir().join(&to);
            durable::rename_synced(&OsFs, &from, &dest)?;
            Ok(dest.display().to_string())
        }
        Tier::Cold => {
            let key = format!("{COLD_QUARANTINE_PREFIX}/{to}");
            handle.block_on(cold.copy(&location.path, &key))?;
            handle.block_on(cold.delete(&location.path))?;
            Ok(format!("cold:{key}"))
        }
    }
}

/// The catalog records of the decision, counted into `report`.
fn records(
    decision: &Decision,
    facts: &BTreeMap<Location, FileFacts>,
    now: i64,
    report: &mut RebuildReport,
) -> Vec<SegmentMeta> {
    let mut out = Vec::with_capacity(decision.segments.len());
    for (id, fate) in &decision.segments {
        let f = &facts[&fate.locations[0]];
        let live = fate.is_live();
        let meta = SegmentMeta {
            id: *id,
            project: f.project.clone(),
            day: f.day,
            state: if live { SegmentState::Sealed } else { SegmentState::Retired },
            format: f.format,
            codec: f.codec,
            locations: fate.locations.clone(),
            dropped: fate
                .dropped
                .iter()
                .map(|l| DroppedLocation { location: l.clone(), at_ms: now, generation: 0 })
                .collect(),
            min_time_ms: f.time.0,
            max_time_ms: f.time.1,
            rows: f.rows,
            bytes: fate.bytes,
            checksum: fate.checksum,
            min_seq: f.seqs.0,
            max_seq: f.seqs.1,
            created_at_ms: f.created_at_ms,
            sealed_at_ms: Some(now),
            created_generation: 0,
            updated_generation: 0,
            retired: (!live).then(|| Retirement {
                at_ms: now,
                generation: 0,
                replaced_by: fate.superseded_by.clone(),
                erase: fate.erase,
            }),
            blocks: f.blocks.clone(),
            placed_at_ms: None,
            role: f.role,
        };
        let placement = match meta.placement() {
            Placement::Hot => "hot",
            Placement::Cold => "cold",
            Placement::Both => "both",
        };
        *report.segments.entry(format!("{}/{placement}", meta.state.label())).or_default() += 1;
        for l in &meta.locations {
            *report.copies.entry(l.tier.label().to_string()).or_default() += 1;
        }
        for d in &meta.dropped {
            *report.dropped_copies.entry(d.location.tier.label().to_string()).or_default() += 1;
        }
        if !meta.role.is_data() {
            report.side_segments += 1;
        }
        if f.legacy {
            report.legacy_files += 1;
        }
        match (live, meta.role.is_data()) {
            (true, true) => report.rows_live += meta.rows,
            (true, false) => report.rows_side += meta.rows,
            (false, _) => {
                report.rows_superseded += meta.rows;
                report.superseded.push((*id, fate.superseded_by.clone()));
            }
        }
        out.push(meta);
    }
    out
}

/// Writes `records` into a fresh sled directory, then swaps it in for `catalog/` (kept as `catalog.broken-<ms>`).
/// Returns the catalog directory and where the old one is.
fn swap_in(
    layout: &Layout,
    now: i64,
    records: Vec<SegmentMeta>,
    report: &mut RebuildReport,
) -> Result<(PathBuf, Option<PathBuf>)> {
    let dir = layout.catalog_dir();
    let name = dir.file_name().expect("the catalog has a directory name").to_string_lossy().into_owned();
    let fresh = layout.root().join(format!("{name}.rebuild-{now}"));
    if fresh.exists() {
        return Err(StoreError::RebuildRefused(format!("{} exists already: remove it and retry", fresh.display())));
    }
    {
        let catalog = Catalog::open(&fresh)?;
        report.generation = if records.is_empty() {
            0
        } else {
            catalog.commit(records.into_iter().map(CatalogChange::Put).collect())?
        };
        catalog.flush()?;
    }
    let root = layout.root();
    let sync_root = || OsFs.sync_dir(root).map_err(|e| StoreError::io(root, e));
    let old = if dir.exists() {
        let kept = root.join(format!("{name}.broken-{now}"));
        std::fs::rename(&dir, &kept).map_err(|e| StoreError::io(&dir, e))?;
        sync_root()?;
        Some(kept)
    } else {
        None
    };
    std::fs::rename(&fresh, &dir).map_err(|e| StoreError::io(&fresh, e))?;
    sync_root()?;
    Ok((dir, old))
}

/// For a catalog that holds nothing (generation 0): what shows that segments exist all the same (the catalog was
/// lost or damaged and sled opened an empty one), or `None` for a new node. Reads hot files until one describes
/// itself as a segment with data, and lists the cold tier's `segments/` (a listing that fails is logged and
/// taken as empty).
pub async fn segments_without_catalog(layout: &Layout, cold: &ColdStore) -> Result<Option<String>> {
    for (location, path) in hot_files(layout)? {
        if scan::parse_name(&location).is_err() {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        if examine(&location, &bytes).is_ok() {
            return Ok(Some(format!("the hot directory holds segment files ({})", location.path)));
        }
    }
    // A cold tier that cannot be listed now must not keep a new node from starting: said, not fatal.
    let objects = match cold.list(COLD_SEGMENTS_PREFIX).await {
        Ok(o) => o,
        Err(e) => {
            warn!(error = %e, "cannot list the cold tier to check that an empty catalog is a new one");
            return Ok(None);
        }
    };
    Ok(objects.first().map(|o| format!("the cold tier holds {} segment objects ({})", objects.len(), o.key)))
}
