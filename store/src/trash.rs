//! The trash, read and restored: what garbage collection deleted waits here for `gc.trash_retention_secs`
//! ([`crate::gc`]), and a segment deleted by mistake can be put back into service within that window.
//!
//! A gc run that deletes copies writes one batch, `trash/<ms>/`: the copies (hot files under
//! `DATA_DIR/trash/<ms>/<path>`, cold objects under `trash/<ms>/<key>` in the bucket) and the catalog record of each
//! segment as it was (`DATA_DIR/trash/<ms>/records/<id>.json`).
//!
//! [`Trash::restore`] brings back segments the catalog no longer has, each through the crash-safe steps of a move
//! (see ARCHITECTURE.md):
//! 1. a trashed copy is read and checked against the saved record (size, crc32c); a hot one first, else a cold one;
//! 2. a move intent for a fresh hot path is recorded;
//! 3. `restore.write`: the bytes are written there create-only, fsynced, read back and checked;
//! 4. `restore.commit`: ONE commit, failing unless the catalog still has no record of the segment, puts the record
//!    back as a live sealed segment with that one copy and clears the intent.
//!
//! A crash before step 4 leaves an intent whose copy recovery deletes; the trash is never changed by a restore
//! (its entries are purged when their retention ends, as always). A restored segment is live again: queries count
//! it, deduplicated against the segments that replaced it (the query engine keeps one copy per dedup key), so
//! restoring the inputs of a rewrite brings back any event the rewrite lost and changes no other count; later
//! passes merge it again.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::catalog::{BlockChecksums, CatalogChange, Intent, IntentKind, SegmentMeta, SegmentState};
use crate::context::StoreContext;
use crate::error::{Result, StoreError};
use crate::layout::{Layout, Location, SegmentId, Tier};
use crate::verify::check_copy;

/// One copy of a trashed segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrashedCopy {
    /// Where the copy was in service.
    pub location: Location,
    /// Where it waits now (a path under the data directory, or a key in the bucket).
    pub trash_path: String,
    /// Whether it is still there.
    pub present: bool,
}

/// A segment whose record a gc batch saved: one row of the trash listing (`GET /v1/admin/trash` sends it as it is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrashedSegment {
    /// The batch: the time (ms) of the gc run that deleted it.
    pub batch_ms: i64,
    pub id: SegmentId,
    pub project: String,
    /// `YYYY-MM-DD`.
    pub day: String,
    pub rows: u64,
    pub bytes: u64,
    /// The record's state when it was saved (`sealed`, `retired`).
    pub state: SegmentState,
    pub copies: Vec<TrashedCopy>,
    /// Whether the catalog has a record of the segment now (then it is not restored).
    pub in_catalog: bool,
}

crate::labelled_enum! {
    /// What a restore did with one segment.
    pub enum RestoreStatus {
        /// Back in service with a fresh hot copy.
        Restored = "restored",
        /// The catalog has a record of it: nothing to do.
        InCatalog = "in_catalog",
        /// The batch holds no record of it.
        NotInBatch = "not_in_batch",
        /// A step failed; `error` says which.
        Error = "error",
    }
}

/// What a restore did with one segment: one row of the answer (`POST /v1/admin/trash/restore` sends it as it is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreOutcome {
    pub segment: String,
    pub outcome: RestoreStatus,
    /// The restored copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reads and restores the trash of one node.
#[derive(Debug)]
pub struct Trash {
    ctx: StoreContext,
}

impl Trash {
    pub fn new(ctx: StoreContext) -> Self {
        Self { ctx }
    }

    /// Every saved record of every batch, oldest batch first, with where its copies are. Blocking (looks up cold
    /// copies).
    pub fn list(&self) -> Result<Vec<TrashedSegment>> {
        let snapshot = self.ctx.catalog.snapshot();
        let mut out = Vec::new();
        for (batch_ms, records) in self.batches()? {
            for saved in records {
                let mut copies = Vec::new();
                for location in trashed_locations(&saved) {
                    let trash_path = Layout::trash_path(batch_ms, &location.path);
                    let present = match location.tier {
                        Tier::Hot => self.ctx.layout.root().join(&trash_path).is_file(),
                        Tier::Cold => self.ctx.handle.block_on(self.ctx.cold.head(&trash_path))?.is_some(),
                    };
                    copies.push(TrashedCopy { location, trash_path, present });
                }
                out.push(TrashedSegment {
                    batch_ms,
                    id: saved.id,
                    project: saved.project.clone(),
                    day: crate::layout::format_day(saved.day),
                    rows: saved.rows,
                    bytes: saved.bytes,
                    state: saved.state,
                    copies,
                    in_catalog: snapshot.get(&saved.id).is_some(),
                });
            }
        }
        Ok(out)
    }

    /// Restores the segments of batch `batch_ms` named in `ids` (all of the batch when empty) that the catalog no
    /// longer has; see the module documentation. One outcome per segment; a failure of one does not stop the
    /// others. Blocking.
    pub fn restore(&self, batch_ms: i64, ids: &[SegmentId], now_ms: i64) -> Result<Vec<RestoreOutcome>> {
        let batches = self.batches()?;
        let Some(records) = batches.get(&batch_ms) else {
            return Err(StoreError::TrashBatchNotFound { batch_ms, batches: batches.keys().copied().collect() });
        };
        let mut out = Vec::new();
        for id in ids.iter().filter(|id| !records.iter().any(|r| r.id == **id)) {
            out.push(RestoreOutcome {
                segment: id.to_string(),
                outcome: RestoreStatus::NotInBatch,
                location: None,
                error: Some(format!("batch {batch_ms} holds no record of it")),
            });
        }
        for saved in records.iter().filter(|r| ids.is_empty() || ids.contains(&r.id)) {
            let outcome = if saved.retired.as_ref().is_some_and(|r| r.erase) {
                // Its copies may hold rows a user deletion removed: putting them back would undo the deletion.
                RestoreOutcome {
                    segment: saved.id.to_string(),
                    outcome: RestoreStatus::Error,
                    location: None,
                    error: Some("erased by a user deletion: not restorable".into()),
                }
            } else if self.ctx.catalog.snapshot().get(&saved.id).is_some() {
                RestoreOutcome {
                    segment: saved.id.to_string(),
                    outcome: RestoreStatus::InCatalog,
                    location: None,
                    error: None,
                }
            } else {
                match self.restore_one(batch_ms, saved, now_ms) {
                    Ok(location) => RestoreOutcome {
                        segment: saved.id.to_string(),
                        outcome: RestoreStatus::Restored,
                        location: Some(location),
                        error: None,
                    },
                    Err(e) => {
                        warn!(segment = %saved.id, batch_ms, error = %e, "restore from the trash failed");
                        RestoreOutcome {
                            segment: saved.id.to_string(),
                            outcome: RestoreStatus::Error,
                            location: None,
                            error: Some(e.to_string()),
                        }
                    }
                }
            };
            metrics::counter!("tierd_trash_restores_total", "outcome" => outcome.outcome.label()).increment(1);
            out.push(outcome);
        }
        Ok(out)
    }

    /// Brings one segment back: a verified trashed copy to a fresh hot path, then one commit.
    fn restore_one(&self, batch_ms: i64, saved: &SegmentMeta, now_ms: i64) -> Result<Location> {
        let ctx = &self.ctx;
        ctx.check_disk_reserve("restore", saved.bytes)?;
        let bytes = self.verified_copy(batch_ms, saved)?;
        // Operator work, but background work all the same: the hot disk write draws from the IO budget.
        ctx.budget().acquire_disk_blocking(saved.bytes);
        let location =
            Location::hot(Layout::hot_copy_location(&saved.project, saved.id, now_ms, saved.format.extension()));
        ctx.catalog.record_intents(&[Intent::new(saved.id, location.clone(), IntentKind::Restore, now_ms)])?;
        if let Err(e) = crate::moves::write_hot_copy(ctx, saved, &location, &bytes, "restore.write") {
            crate::recovery::roll_back_copy(ctx, saved.id, &location);
            return Err(e);
        }
        let mut next = saved.clone();
        next.state = SegmentState::Sealed;
        next.retired = None;
        next.locations = vec![location.clone()];
        next.dropped = Vec::new();
        if next.blocks.is_none() && next.format == crate::catalog::Format::Parquet {
            next.blocks = Some(BlockChecksums::compute(&bytes, BlockChecksums::DEFAULT_BLOCK_SIZE));
        }
        let committed = ctx.catalog.commit(vec![
            CatalogChange::ExpectAbsent(saved.id),
            CatalogChange::Put(next),
            CatalogChange::ClearIntent(location.clone()),
        ]);
        match committed {
            Ok(generation) => {
                if let Err(e) = ctx.failpoints.hit("restore.commit") {
                    warn!(error = %e, "failpoint after the restore commit");
                }
                info!(segment = %saved.id, batch_ms, location = %location.path, generation, "segment restored from the trash");
                Ok(location)
            }
            Err(e) => {
                // A failed precondition wrote nothing: the copy is known to be unreferenced. Any other failure may
                // or may not have reached the disk: recovery decides from the intent (present = not committed).
                if matches!(e, StoreError::StalePlan(_)) {
                    crate::recovery::roll_back_copy(ctx, saved.id, &location);
                }
                Err(e)
            }
        }
    }

    /// The bytes of one of the segment's trashed copies that matches the saved record (size, crc32c): hot copies
    /// first (local), then cold ones.
    fn verified_copy(&self, batch_ms: i64, saved: &SegmentMeta) -> Result<Bytes> {
        let mut locations = trashed_locations(saved);
        locations.sort_by_key(|l| l.tier);
        let mut problems = Vec::new();
        for location in locations {
            let trash_path = Layout::trash_path(batch_ms, &location.path);
            let bytes = match location.tier {
                Tier::Hot => match std::fs::read(self.ctx.layout.root().join(&trash_path)) {
                    Ok(b) => Bytes::from(b),
                    Err(e) => {
                        problems.push(format!("{trash_path}: {e}"));
                        continue;
                    }
                },
                Tier::Cold => match self.ctx.handle.block_on(self.ctx.cold.get(&trash_path)) {
                    Ok(b) => b,
                    Err(e) => {
                        problems.push(format!("{trash_path}: {e}"));
                        continue;
                    }
                },
            };
            match check_copy(saved, &Location { tier: location.tier, path: trash_path.clone() }, &bytes) {
                Ok(()) => return Ok(bytes),
                Err(e) => problems.push(e.to_string()),
            }
        }
        Err(StoreError::Corrupt {
            id: saved.id,
            message: format!("no trashed copy matches the saved record: {}", problems.join("; ")),
        })
    }

    /// Every batch with the records it saved, by batch time.
    fn batches(&self) -> Result<BTreeMap<i64, Vec<SegmentMeta>>> {
        saved_records(&self.ctx)
    }
}

/// Every hot trash batch with the catalog records it saved, by batch time (gc and the erasure read them too).
pub(crate) fn saved_records(ctx: &StoreContext) -> Result<BTreeMap<i64, Vec<SegmentMeta>>> {
    let root = ctx.layout.trash_dir();
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io(&root, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(&root, e))?;
        let Some(batch_ms) = entry.file_name().to_str().and_then(|n| n.parse::<i64>().ok()) else { continue };
        let dir = ctx.layout.root().join(Layout::trash_records(batch_ms));
        let mut records = Vec::new();
        if let Ok(files) = std::fs::read_dir(&dir) {
            for file in files.flatten() {
                let path = file.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let text = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
                match serde_json::from_slice::<SegmentMeta>(&text) {
                    Ok(m) => records.push(m),
                    Err(e) => warn!(path = %path.display(), error = %e, "unreadable record in the trash; skipped"),
                }
            }
        }
        records.sort_by_key(|m| m.id);
        out.insert(batch_ms, records);
    }
    Ok(out)
}

/// The copies a saved record lists: live ones and those moves had dropped.
fn trashed_locations(saved: &SegmentMeta) -> Vec<Location> {
    let mut out: Vec<Location> = saved.locations.to_vec();
    out.extend(saved.dropped.iter().map(|d| d.location.clone()));
    out
}

#[cfg(test)]
mod tests;
