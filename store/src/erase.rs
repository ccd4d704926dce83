//! Erasure: what a user deletion must reach besides the live segments, so that `done` means no copy holding the
//! deleted rows remains anywhere.
//!
//! The `deletions` pass rewrites every live segment without the rows ([`crate::rewrite`]'s `erase_rows`, which
//! marks the retired input `erase`). The copies left are:
//! - **retired segments and dropped copies still in the catalog** (retired by an earlier compaction, re-encode,
//!   retention or expiry and not yet deleted by gc, or by the deletion itself): [`Eraser::mark_retired`] marks every
//!   retired segment that may hold the rows `erase` in ONE commit (guarded by each record's generation); gc then
//!   erases them with the erasure retention (`deletions.trash_retention_secs`) after leases, pins and the grace
//!   period, and drops their cached cold blocks first;
//! - **trash entries** on either tier from earlier gc runs: [`Eraser::purge_trash`] reads back every saved record
//!   of the project that may hold the rows (trashed copy checked against the record, rows decoded) and, when a row
//!   matches a request's filter, deletes its trashed copies (hot file with its directory fsynced, cold object) and
//!   then its saved record, for good. Entries without a matching row are kept (and remembered as clean for those
//!   requests, so that a bounded run makes progress);
//! - **cached cold blocks**: dropped by gc before it deletes an object, and at every gc run for objects the catalog
//!   no longer names.
//!
//! [`Eraser::leftover`] counts what is still there; the pass calls a request `done` only when it is all zero.
//! "May hold" is decided from a record alone: same project, `min_seq <= max_seq` of the requests, and the filter's
//! coverage of its time range is not `None`. Deciding from statistics over-approximates (a retired compaction
//! input without the user's rows is erased too, and waited for), never under-approximates.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tierd_codecs::{Coverage, RowFilter, TimeRange};
use tracing::{info, warn};

use crate::cache::BlockCache;
use crate::catalog::{CatalogChange, SegmentMeta, SegmentState};
use crate::context::StoreContext;
use crate::deletions::{DeletionId, DeletionRequest};
use crate::error::{Result, StoreError};
use crate::layout::{Layout, Location, SegmentId, Tier};

/// What may still hold a project's deleted rows outside the live segments (one pass's view).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Leftover {
    /// Copies of retired segments (and their dropped copies) on the hot disk that gc has not deleted yet.
    pub retired_hot: u64,
    /// The same in the cold tier.
    pub retired_cold: u64,
    /// Trash entries (saved segments, either tier) that hold or may hold the rows.
    pub trash: u64,
    /// Cached blocks of those cold objects on the hot disk.
    pub cache_blocks: u64,
    /// Bytes of all of the above.
    pub bytes: u64,
}

impl Leftover {
    pub fn is_empty(&self) -> bool {
        self.retired_hot == 0 && self.retired_cold == 0 && self.trash == 0 && self.cache_blocks == 0
    }
}

/// What the trash holds of one saved segment.
enum Trashed {
    /// A copy that matches its record, and where it was read.
    Verified(Bytes, Location),
    /// No copy is left.
    Gone,
    /// Copies are left, none matching its record.
    Unreadable(Vec<String>),
}

/// What one [`Eraser::purge_trash`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrashScan {
    /// Saved segments read back.
    pub checked: u64,
    /// Saved segments that held matching rows, deleted for good (copies and record).
    pub purged: u64,
    /// Trashed copies deleted for good, by tier (hot, cold).
    pub copies_purged: (u64, u64),
    pub bytes_read: u64,
    /// Saved segments left for the next run (byte limit).
    pub left: u64,
}

/// Carries erasure out beyond the live segments; see the module documentation. Shared by the passes (one per
/// node): it remembers which trash entries were found clean for which request.
pub struct Eraser {
    ctx: StoreContext,
    cache: Option<Arc<BlockCache>>,
    /// (batch, segment, request): the trashed segment holds none of the request's rows. Trash entries never change,
    /// so this stays true; forgotten at a restart (read again).
    clean: Mutex<HashSet<(i64, SegmentId, DeletionId)>>,
    /// (segment, request): the live segment holds none of the request's rows (read by the pass, or written by it
    /// without them). Live segments never change either; the pass does not read them again while the request waits
    /// for gc.
    live_clean: Mutex<HashSet<(SegmentId, DeletionId)>>,
}

impl std::fmt::Debug for Eraser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eraser").field("clean", &self.clean.lock().len()).finish_non_exhaustive()
    }
}

/// Whether a record may hold rows of requests over `project` up to `max_seq` that `filter` matches.
pub fn may_hold(m: &SegmentMeta, project: &str, filter: &RowFilter, max_seq: u64) -> bool {
    m.project == project
        && m.rows > 0
        && m.min_seq <= max_seq
        && filter.coverage(Some(TimeRange { min_ms: m.min_time_ms, max_ms: m.max_time_ms })) != Coverage::None
}

impl Eraser {
    pub fn new(ctx: StoreContext, cache: Option<Arc<BlockCache>>) -> Self {
        Self { ctx, cache, clean: Mutex::new(HashSet::new()), live_clean: Mutex::new(HashSet::new()) }
    }

    /// Remembers that live segments `ids` hold none of `requests`' rows.
    pub fn mark_live_clean(&self, ids: &[SegmentId], requests: &[DeletionRequest]) {
        let mut clean = self.live_clean.lock();
        for id in ids {
            clean.extend(requests.iter().map(|r| (*id, r.id)));
        }
    }

    /// Whether live segment `id` is known to hold none of `requests`' rows.
    pub fn is_live_clean(&self, id: SegmentId, requests: &[DeletionRequest]) -> bool {
        let clean = self.live_clean.lock();
        requests.iter().all(|r| clean.contains(&(id, r.id)))
    }

    /// Marks `erase` every retired segment of `project` that may hold rows `filter` matches up to `max_seq` and
    /// still has copies, in ONE commit (each guarded by its `updated_generation`; a concurrent change makes the
    /// commit fail and the next run retries). Failpoint `erase.mark` after the commit. Returns how many it marked.
    pub fn mark_retired(&self, project: &str, filter: &RowFilter, max_seq: u64) -> Result<u64> {
        let snapshot = self.ctx.catalog.snapshot();
        let mut changes = Vec::new();
        let mut ids = Vec::new();
        for m in snapshot.segments() {
            let Some(r) = m.retired.as_ref().filter(|r| m.state == SegmentState::Retired && !r.erase) else {
                continue;
            };
            if m.all_locations().next().is_none() || !may_hold(m, project, filter, max_seq) {
                continue;
            }
            let mut next = (**m).clone();
            next.retired = Some(crate::catalog::Retirement { erase: true, ..r.clone() });
            changes.push(CatalogChange::Expect { id: m.id, updated_generation: m.updated_generation });
            changes.push(CatalogChange::Put(next));
            ids.push(m.id);
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let generation = self.ctx.catalog.commit(changes)?;
        self.ctx.failpoints.hit("erase.mark").map_err(|e| StoreError::io("catalog", e))?;
        for id in &ids {
            info!(segment = %id, project, generation, "retired segment marked for erasure: may hold deleted rows");
        }
        metrics::counter!("tierd_erase_marked_total").increment(ids.len() as u64);
        Ok(ids.len() as u64)
    }

    /// Reads back the trash entries of `requests`' project (all of one project) that may hold their rows, and
    /// deletes for good those holding a matching row; at most `max_bytes` read (at least one entry). Entries of
    /// segments already marked `erase` are left to gc's erasure retention.
    pub fn purge_trash(&self, project: &str, requests: &[DeletionRequest], max_bytes: u64) -> Result<TrashScan> {
        let mut scan = TrashScan::default();
        let max_seq = requests.iter().map(|r| r.max_seq).max().unwrap_or(0);
        let filter = RowFilter::AnyOf { filters: requests.iter().map(DeletionRequest::filter).collect() };
        for (batch_ms, records) in crate::trash::saved_records(&self.ctx)? {
            for saved in records {
                if saved.retired.as_ref().is_some_and(|r| r.erase) {
                    // Left to gc's erasure retention; a record whose copies are all gone (a crash between gc's
                    // purge of the copies and of the record) holds no row and goes now.
                    if self.present_copies(batch_ms, &saved)? == 0 {
                        crate::gc::purge_trashed_record(&self.ctx, batch_ms, saved.id)?;
                    }
                    continue;
                }
                if !may_hold(&saved, project, &filter, max_seq) || self.is_clean(batch_ms, saved.id, requests) {
                    continue;
                }
                if scan.bytes_read > 0 && scan.bytes_read.saturating_add(saved.bytes) > max_bytes {
                    scan.left += 1;
                    continue;
                }
                let (bytes, location) = match self.trashed_bytes(batch_ms, &saved)? {
                    Trashed::Verified(bytes, location) => (bytes, location),
                    Trashed::Gone => {
                        // No copy left in the trash: only the record remains, which holds no row.
                        crate::gc::purge_trashed_record(&self.ctx, batch_ms, saved.id)?;
                        continue;
                    }
                    Trashed::Unreadable(problems) => {
                        // Its rows cannot be told, and it may hold deleted ones: an entry already out of service
                        // goes rather than keep what the request erases.
                        warn!(segment = %saved.id, batch_ms, project, problems = %problems.join("; "),
                            "trash entry that may hold deleted rows cannot be read back: deleted for good");
                        let (hot, cold) = self.purge_saved(batch_ms, &saved)?;
                        scan.purged += 1;
                        scan.copies_purged.0 += hot;
                        scan.copies_purged.1 += cold;
                        continue;
                    }
                };
                scan.bytes_read += bytes.len() as u64;
                scan.checked += 1;
                metrics::counter!("tierd_erase_trash_read_bytes_total").increment(bytes.len() as u64);
                let filters: Vec<RowFilter> = requests.iter().map(DeletionRequest::filter).collect();
                let mut matching = false;
                crate::read::scan(&saved, bytes, &crate::read::everything(), |e| {
                    matching = matching || filters.iter().any(|f| f.matches(&e));
                })?;
                if !matching {
                    let mut clean = self.clean.lock();
                    clean.extend(requests.iter().map(|r| (batch_ms, saved.id, r.id)));
                    continue;
                }
                let (hot, cold) = self.purge_saved(batch_ms, &saved)?;
                scan.purged += 1;
                scan.copies_purged.0 += hot;
                scan.copies_purged.1 += cold;
                info!(segment = %saved.id, batch_ms, project, read_from = %location.path, hot, cold,
                    "trash entry held rows of a user deletion: deleted for good");
            }
        }
        Ok(scan)
    }

    fn is_clean(&self, batch_ms: i64, id: SegmentId, requests: &[DeletionRequest]) -> bool {
        let clean = self.clean.lock();
        requests.iter().all(|r| clean.contains(&(batch_ms, id, r.id)))
    }

    /// Forgets what was found clean for requests that are done (bounds the memory).
    pub fn forget(&self, done: &[DeletionId]) {
        self.clean.lock().retain(|(_, _, r)| !done.contains(r));
        self.live_clean.lock().retain(|(_, r)| !done.contains(r));
    }

    /// How many of `saved`'s trashed copies in batch `batch_ms` are still there.
    fn present_copies(&self, batch_ms: i64, saved: &SegmentMeta) -> Result<usize> {
        let mut n = 0;
        for l in saved.all_locations() {
            let path = Layout::trash_path(batch_ms, &l.path);
            let present = match l.tier {
                Tier::Hot => self.ctx.resolve(&path)?.is_file(),
                Tier::Cold => self.ctx.handle.block_on(self.ctx.cold.head(&path))?.is_some(),
            };
            n += usize::from(present);
        }
        Ok(n)
    }

    /// One trashed copy of `saved` that matches its record (size, crc32c), hot first; else whether none is left or
    /// those left do not match their record (damaged).
    fn trashed_bytes(&self, batch_ms: i64, saved: &SegmentMeta) -> Result<Trashed> {
        let mut locations: Vec<&Location> = saved.all_locations().collect();
        locations.sort_by_key(|l| l.tier);
        let mut problems = Vec::new();
        for l in locations {
            let path = Layout::trash_path(batch_ms, &l.path);
            let bytes = match l.tier {
                Tier::Hot => match std::fs::read(self.ctx.resolve(&path)?) {
                    Ok(b) => Bytes::from(b),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io(&path, e)),
                },
                Tier::Cold => match self.ctx.handle.block_on(self.ctx.cold.get(&path)) {
                    Ok(b) => b,
                    Err(StoreError::ObjectNotFound { .. }) => continue,
                    Err(e) => return Err(e),
                },
            };
            let location = Location { tier: l.tier, path };
            match crate::verify::check_copy(saved, &location, &bytes) {
                Ok(()) => return Ok(Trashed::Verified(bytes, location)),
                Err(e) => problems.push(e.to_string()),
            }
        }
        Ok(if problems.is_empty() { Trashed::Gone } else { Trashed::Unreadable(problems) })
    }

    /// Deletes every trashed copy of `saved` in batch `batch_ms` (failpoint `erase.trash` after each), then its
    /// record. Returns the copies deleted (hot, cold).
    fn purge_saved(&self, batch_ms: i64, saved: &SegmentMeta) -> Result<(u64, u64)> {
        let (mut hot, mut cold) = (0, 0);
        for l in saved.all_locations() {
            let location = Location { tier: l.tier, path: Layout::trash_path(batch_ms, &l.path) };
            crate::gc::purge_trashed_copy(&self.ctx, &location)?;
            self.ctx.failpoints.hit("erase.trash").map_err(|e| StoreError::io(&location.path, e))?;
            metrics::counter!("tierd_erase_trash_purged_total", "tier" => l.tier.label()).increment(1);
            match l.tier {
                Tier::Hot => hot += 1,
                Tier::Cold => cold += 1,
            }
        }
        crate::gc::purge_trashed_record(&self.ctx, batch_ms, saved.id)?;
        Ok((hot, cold))
    }

    /// What still may hold the rows of `requests` (all of `project`) outside the live segments: copies of retired
    /// segments in the catalog, trash entries not found clean, cached blocks of those cold copies. Blocking (lists
    /// the trash).
    pub fn leftover(&self, project: &str, requests: &[DeletionRequest]) -> Result<Leftover> {
        let max_seq = requests.iter().map(|r| r.max_seq).max().unwrap_or(0);
        let filter = RowFilter::AnyOf { filters: requests.iter().map(DeletionRequest::filter).collect() };
        let mut left = Leftover::default();
        let snapshot = self.ctx.catalog.snapshot();
        for m in snapshot.segments().filter(|m| m.state == SegmentState::Retired) {
            if !may_hold(m, project, &filter, max_seq) {
                continue;
            }
            for l in m.all_locations() {
                left.bytes += m.bytes;
                match l.tier {
                    Tier::Hot => left.retired_hot += 1,
                    Tier::Cold => {
                        left.retired_cold += 1;
                        left.cache_blocks += self.cached_blocks(&l.path);
                    }
                }
            }
        }
        for (batch_ms, records) in crate::trash::saved_records(&self.ctx)? {
            for saved in records {
                if may_hold(&saved, project, &filter, max_seq) && !self.is_clean(batch_ms, saved.id, requests) {
                    left.trash += 1;
                    left.bytes += saved.bytes;
                }
            }
        }
        if left.trash > 0 || left.retired_hot > 0 || left.retired_cold > 0 {
            info!(project, ?left, "copies that may hold deleted rows are left");
        }
        Ok(left)
    }

    fn cached_blocks(&self, key: &str) -> u64 {
        self.cache.as_ref().map_or(0, |c| c.blocks_on_disk(key) as u64)
    }

    /// Whether the cold cache is reconciled with the catalog: drops blocks of objects the catalog no longer names
    /// (gc does so at each run; the pass does it before calling a request done, so `done` never waits for gc's
    /// schedule for this). Returns the blocks dropped.
    pub fn reconcile_cache(&self) -> u64 {
        let Some(cache) = &self.cache else { return 0 };
        let snapshot = self.ctx.catalog.snapshot();
        let known: Vec<&Location> = snapshot.segments().flat_map(|m| m.all_locations()).collect();
        let dropped = cache.retain_objects(known.iter().filter(|l| l.tier == Tier::Cold).map(|l| l.path.as_str()));
        if dropped > 0 {
            warn!(blocks = dropped, "cached blocks of objects no record names were still on disk: dropped");
        }
        dropped as u64
    }
}

#[cfg(test)]
mod tests;
