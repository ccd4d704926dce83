//! Crash recovery: reconcile the catalog with the hot directory (and uncommitted copies with both tiers) before the
//! writer starts. This is the one home of rollback: every copy written under an intent that never committed (a
//! rewrite's output, a move's new copy, a restored segment) is deleted here, at start-up, and by
//! [`roll_back_copy`] when a step fails at run time.
//!
//! First, every intent left by a crash (`recovery.rollback`): its copy, if written and if no record names it, is
//! deleted (a hot file or a cold object), and the intent cleared. This runs before the hot directory is
//! reconciled, so an uncommitted hot copy is deleted as tierd's own rather than quarantined. Then:
//!
//! The catalog is the truth about what was acknowledged. For every hot segment it knows:
//! - open, file longer than the committed length: the tail was never acknowledged (written, maybe torn, but not
//!   committed) and is cut off (`recovery.truncate`); the segment is then sealed (`recovery.seal`, one commit);
//! - file shorter than committed, or missing: acknowledged data is gone. That is reported loudly (error log and
//!   `tierd_segments_missing` / `tierd_segments_corrupt`), never papered over;
//! - sealed: the file must be exactly the committed length.
//!
//! Only what a crash can have touched is dealt with before serving: bytes past an open segment's committed length
//! (cut off) and pending intents. The writer only ever appends past the committed length, and a group's bytes are
//! fsynced before the commit that covers them, so the committed prefix of any segment, open or sealed, is what was
//! acknowledged: recovery checks lengths and reads no segment's bytes. Checksums and frames of every hot segment
//! are verified after start by the background scrub ([`crate::scrub`]), at the passes' priority, never on the
//! restart's critical path (recovery used to read every hot byte: 27.6 s for 1.17 GB, see RELIABILITY.md), and
//! every read verifies them again.
//!
//! Files under `hot/` that the catalog does not know (a segment created by a write group that never committed, or
//! anything else) are moved to `quarantine/<time>/...` (`recovery.quarantine`): never served, never deleted.

use std::path::{Path, PathBuf};

use tierd_codecs::rows::{valid_prefix, SegmentHeader};
use tracing::{error, info, warn};

use crate::catalog::{CatalogChange, Format, IntentKind, SegmentState};
use crate::context::StoreContext;
use crate::durable;
use crate::error::{Result, StoreError};
use crate::layout::{Layout, Location, SegmentId, Tier};

/// What recovery found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Open segments whose unacknowledged tail was cut off: (segment, bytes removed).
    pub truncated: Vec<(String, u64)>,
    /// Open segments sealed.
    pub sealed: Vec<String>,
    /// Files moved to quarantine (paths relative to the data directory).
    pub quarantined: Vec<String>,
    /// Segments whose file is missing.
    pub missing: Vec<String>,
    /// Segments whose file is shorter than committed or does not verify.
    pub corrupt: Vec<String>,
    /// Uncommitted copies deleted (their intents rolled back): `tier:path`.
    pub rolled_back: Vec<String>,
    /// Retired segments whose file garbage collection had already deleted: records removed.
    pub forgotten: usize,
}

/// Removes the spill files a rewrite left behind when the process stopped (they are never in the catalog and no
/// intent names them: scratch space, not data).
fn remove_spills(layout: &crate::layout::Layout) -> Result<()> {
    let dir = layout.spill_dir();
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {
            warn!(dir = %dir.display(), "removed the spill files of an interrupted rewrite");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(dir, e)),
    }
}

/// Recovers the store of `ctx`. Blocking (deletes uncommitted cold copies through the context's runtime handle):
/// call it from outside the runtime or from a blocking thread.
pub fn recover(ctx: &StoreContext) -> Result<RecoveryReport> {
    let (layout, catalog, failpoints) = (&ctx.layout, &ctx.catalog, &ctx.failpoints);
    let mut report = RecoveryReport::default();
    remove_spills(layout)?;
    roll_back_intents(ctx, &mut report)?;
    let snapshot = catalog.snapshot();
    let mut known = std::collections::HashSet::new();
    let mut seal = Vec::new();
    let mut forget = Vec::new();
    for meta in snapshot.segments() {
        // Dropped hot copies are files too: known (not quarantined) while they exist; one whose file is gone was
        // deleted by garbage collection, which crashed before updating the record.
        let gone = |path: &str| layout.resolve(path).is_some_and(|p| matches!(p.try_exists(), Ok(false)));
        let mut fixed = (**meta).clone();
        fixed.dropped.retain(|d| d.location.tier != Tier::Hot || !gone(&d.location.path));
        known.extend(fixed.dropped.iter().filter(|d| d.location.tier == Tier::Hot).map(|d| d.location.path.clone()));
        let hot = meta.hot_path().map(|location| (location, layout.resolve(location)));
        let len = match hot {
            None => None,
            Some((location, None)) => {
                error!(segment = %meta.id, location, "segment has an invalid hot location");
                report.corrupt.push(meta.id.to_string());
                None
            }
            Some((location, Some(path))) => {
                known.insert(location.to_string());
                match std::fs::metadata(&path) {
                    Ok(m) => Some((path, m.len())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && meta.state == SegmentState::Retired => {
                        // Garbage collection deleted the file and crashed before updating the record.
                        fixed.locations.retain(|l| l.tier != Tier::Hot);
                        None
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        if meta.cold_key().is_some() {
                            warn!(segment = %meta.id, path = %path.display(), "hot copy missing; the cold copy serves reads and replaces it");
                            ctx.repairs.report(meta.id, Tier::Hot);
                        } else {
                            error!(segment = %meta.id, path = %path.display(), rows = meta.rows, "segment missing: acknowledged data is gone");
                            ctx.repairs.report_damaged(meta.id, Tier::Hot, "missing", "recovery");
                            report.missing.push(meta.id.to_string());
                        }
                        None
                    }
                    Err(e) => return Err(StoreError::io(path, e)),
                }
            }
        };
        if fixed.state == SegmentState::Retired && fixed.locations.is_empty() && fixed.dropped.is_empty() {
            forget.push(CatalogChange::Remove(meta.id));
            continue;
        } else if fixed != **meta {
            forget.push(CatalogChange::Put(fixed));
        }
        let Some((path, len)) = len else { continue };
        if len < meta.bytes {
            if meta.cold_key().is_some() {
                warn!(segment = %meta.id, len, committed = meta.bytes, "hot copy shorter than committed; the cold copy replaces it");
                ctx.repairs.report(meta.id, Tier::Hot);
            } else {
                error!(segment = %meta.id, len, committed = meta.bytes, "segment file is shorter than its committed length");
                ctx.repairs.report_damaged(meta.id, Tier::Hot, "short", "recovery");
                report.corrupt.push(meta.id.to_string());
            }
            continue;
        }
        if len > meta.bytes {
            // Step `recovery.truncate`: bytes past the commit point were never acknowledged.
            durable::truncate_synced(ctx.fs.as_ref(), &path, meta.bytes)?;
            failpoints.hit("recovery.truncate").map_err(|e| StoreError::io(&path, e))?;
            warn!(segment = %meta.id, removed = len - meta.bytes, "cut unacknowledged tail");
            report.truncated.push((meta.id.to_string(), len - meta.bytes));
        }
        // The committed prefix is what was acknowledged (fsynced before its commit, never rewritten): its bytes
        // are the scrub's to verify, after start.
        if meta.state == SegmentState::Open {
            let mut m = (**meta).clone();
            m.state = SegmentState::Sealed;
            m.sealed_at_ms = Some(ctx.clock.now_ms());
            report.sealed.push(m.id.to_string());
            seal.push(CatalogChange::Put(m));
        }
    }
    // On a disk too full for a catalog commit (below `catalog.min_free_bytes`) the commits wait: forgotten
    // records stay (harmless: their copies are gone and gc treats them so), open segments stay open for the hot
    // writer to take over and seal once there is room. Start-up goes on, so reads are served from a full disk.
    let room = catalog.check_headroom("recovery");
    if let Err(e) = &room {
        if !forget.is_empty() || !seal.is_empty() {
            warn!(error = %e, open = seal.len(), records = forget.len(), "disk full: recovery's commits deferred");
        }
    }
    if !forget.is_empty() && room.is_ok() {
        report.forgotten = forget.len();
        catalog.commit(forget)?;
    }
    if !seal.is_empty() && room.is_ok() {
        // Step `recovery.seal`.
        catalog.commit(seal)?;
        failpoints.hit("recovery.seal").map_err(|e| StoreError::io(layout.catalog_dir(), e))?;
    } else {
        report.sealed.clear();
    }
    quarantine_unknown(ctx, &known, &mut report)?;
    metrics::gauge!("tierd_segments_missing").set(report.missing.len() as f64);
    metrics::gauge!("tierd_segments_corrupt").set(report.corrupt.len() as f64);
    metrics::counter!("tierd_quarantined_files_total").increment(report.quarantined.len() as u64);
    info!(
        truncated = report.truncated.len(),
        sealed = report.sealed.len(),
        quarantined = report.quarantined.len(),
        missing = report.missing.len(),
        corrupt = report.corrupt.len(),
        "recovery done"
    );
    Ok(report)
}

/// Checks that a hot segment's committed bytes carry its checksum and decode as whole frames.
pub(crate) fn verify(layout: &Layout, path: &Path, meta: &crate::catalog::SegmentMeta) -> bool {
    let bytes = match crate::read::read_committed(layout, meta) {
        Ok(b) => b,
        Err(e) => {
            error!(segment = %meta.id, path = %path.display(), error = %e, "segment does not verify");
            return false;
        }
    };
    let ok = match meta.format {
        Format::Rows => SegmentHeader::decode(&bytes).is_ok_and(|(_, hl)| {
            let p = valid_prefix(&bytes[hl..]);
            p.len == (bytes.len() - hl) as u64 && p.rows == meta.rows
        }),
        Format::Parquet => tierd_codecs::columnar::read_meta(&bytes).is_ok_and(|m| m.rows == meta.rows),
    };
    if !ok {
        error!(segment = %meta.id, "segment frames do not match the catalog");
    }
    ok
}

fn quarantine_unknown(
    ctx: &StoreContext,
    known: &std::collections::HashSet<String>,
    report: &mut RecoveryReport,
) -> Result<()> {
    let layout = &ctx.layout;
    let hot = layout.hot_dir();
    if !hot.exists() {
        return Ok(());
    }
    let mut stack = vec![hot.clone()];
    let mut unknown: Vec<PathBuf> = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| StoreError::io(&path, e))?;
            if ft.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(layout.root()).expect("under the data dir").to_string_lossy().into_owned();
            if !known.contains(&rel) {
                unknown.push(path);
            }
        }
    }
    let now_ms = ctx.clock.now_ms();
    for path in unknown {
        let rel = path.strip_prefix(layout.root()).expect("under the data dir").to_path_buf();
        let dest = layout.quarantine_dir().join(now_ms.to_string()).join(&rel);
        durable::rename_synced(ctx.fs.as_ref(), &path, &dest)?;
        ctx.failpoints.hit("recovery.quarantine").map_err(|e| StoreError::io(&path, e))?;
        warn!(file = %rel.display(), to = %dest.display(), "file unknown to the catalog quarantined");
        report.quarantined.push(rel.to_string_lossy().into_owned());
    }
    Ok(())
}

/// Every intent left by a crash names a copy that was never committed (the commit clears the intent in the same
/// transaction): the copy, if it was written, is tierd's own and was never visible, so it is deleted, and the
/// intent cleared (`recovery.rollback`). Defensive: a copy a record names is never deleted here, whatever the
/// intents say.
fn roll_back_intents(ctx: &StoreContext, report: &mut RecoveryReport) -> Result<()> {
    for intent in ctx.catalog.intents()? {
        let snapshot = ctx.catalog.snapshot();
        let committed = snapshot.get(&intent.segment).is_some_and(|m| m.all_locations().any(|l| *l == intent.location));
        if !committed {
            ctx.delete_copy(&intent.location)?;
        }
        ctx.failpoints.hit("recovery.rollback").map_err(|e| StoreError::io(&intent.location.path, e))?;
        match ctx.catalog.commit(vec![CatalogChange::ClearIntent(intent.location.clone())]) {
            // The copy is gone; its intent, which only says "delete this if present", waits for room.
            Err(StoreError::DiskReserve(e)) => warn!(location = ?intent.location, error = %e, "intent left: disk full"),
            other => {
                other?;
            }
        }
        let (kind, counter) = match intent.kind {
            IntentKind::Rewrite { .. } => ("rewrite", "tierd_rewrite_rollbacks_total"),
            IntentKind::Move => ("move", "tierd_move_rollbacks_total"),
            IntentKind::Restore => ("restore", "tierd_move_rollbacks_total"),
        };
        warn!(segment = %intent.segment, location = ?intent.location, kind, committed, "uncommitted copy rolled back");
        metrics::counter!(counter).increment(1);
        report.rolled_back.push(format!("{}:{}", intent.location.tier.label(), intent.location.path));
    }
    Ok(())
}

/// Undoes a copy that failed before its commit: deletes it and clears its intent. Best effort: whatever is left is
/// recovery's ([`roll_back_intents`] at the next start). Returns whether the copy was deleted.
/// A crash between the two steps (`rollback.clear`) leaves an intent without a copy, which recovery clears.
pub fn roll_back_copy(ctx: &StoreContext, id: SegmentId, location: &Location) -> bool {
    if let Err(e) = ctx.delete_copy(location) {
        warn!(segment = %id, location = ?location, error = %e, "cannot remove an uncommitted copy; recovery will");
        return false;
    }
    if let Err(e) = ctx.failpoints.hit("rollback.clear") {
        warn!(segment = %id, error = %e, "failpoint before clearing a rolled-back copy's intent; recovery will");
        return true;
    }
    if let Err(e) = ctx.catalog.commit(vec![CatalogChange::ClearIntent(location.clone())]) {
        warn!(segment = %id, error = %e, "cannot clear an intent; recovery will");
    }
    true
}
