//! Crash recovery: reconcile the catalog with the hot directory before the writer starts.
//!
//! The catalog is the truth about what was acknowledged. For every hot segment it knows:
//! - open, file longer than the committed length: the tail was never acknowledged (written, maybe torn, but not
//!   committed) and is cut off (`recovery.truncate`); the segment is then sealed (`recovery.seal`, one commit);
//! - file shorter than committed, or missing: acknowledged data is gone. That is reported loudly (error log and
//!   `tierd_segments_missing` / `tierd_segments_corrupt`), never papered over;
//! - sealed: the file must be exactly the committed length.
//!
//! Files under `hot/` that the catalog does not know (a segment created by a write group that never committed, or
//! anything else) are moved to `quarantine/<time>/...` (`recovery.quarantine`): never served, never deleted.

use std::path::{Path, PathBuf};

use tierd_codecs::rows::{valid_prefix, SegmentHeader};
use tracing::{error, info, warn};

use crate::catalog::{Catalog, CatalogChange, Format, SegmentState, Tier};
use crate::clock::Clock;
use crate::error::{Result, StoreError};
use crate::failpoint::Failpoints;
use crate::layout::Layout;

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
    /// Uncommitted rewrite outputs deleted (their intents rolled back).
    pub rolled_back: Vec<String>,
    /// Retired segments whose file garbage collection had already deleted: records removed.
    pub forgotten: usize,
}

pub fn recover(
    layout: &Layout,
    catalog: &Catalog,
    clock: &dyn Clock,
    failpoints: &Failpoints,
) -> Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    roll_back_intents(layout, catalog, failpoints, &mut report)?;
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
                        error!(segment = %meta.id, path = %path.display(), rows = meta.rows, "segment missing: acknowledged data is gone");
                        report.missing.push(meta.id.to_string());
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
            error!(segment = %meta.id, len, committed = meta.bytes, "segment file is shorter than its committed length");
            report.corrupt.push(meta.id.to_string());
            continue;
        }
        if len > meta.bytes {
            // Step `recovery.truncate`: bytes past the commit point were never acknowledged.
            let f = std::fs::OpenOptions::new().write(true).open(&path).map_err(|e| StoreError::io(&path, e))?;
            f.set_len(meta.bytes)
                .and_then(|_| f.sync_all())
                .and_then(|_| failpoints.hit("recovery.truncate"))
                .map_err(|e| StoreError::io(&path, e))?;
            warn!(segment = %meta.id, removed = len - meta.bytes, "cut unacknowledged tail");
            report.truncated.push((meta.id.to_string(), len - meta.bytes));
        }
        if !verify(layout, &path, meta) {
            report.corrupt.push(meta.id.to_string());
            continue;
        }
        if meta.state == SegmentState::Open {
            let mut m = (**meta).clone();
            m.state = SegmentState::Sealed;
            m.sealed_at_ms = Some(clock.now_ms());
            report.sealed.push(m.id.to_string());
            seal.push(CatalogChange::Put(m));
        }
    }
    if !forget.is_empty() {
        report.forgotten = forget.len();
        catalog.commit(forget)?;
    }
    if !seal.is_empty() {
        // Step `recovery.seal`.
        catalog.commit(seal)?;
        failpoints.hit("recovery.seal").map_err(|e| StoreError::io(layout.catalog_dir(), e))?;
    }
    quarantine_unknown(layout, &known, clock.now_ms(), failpoints, &mut report)?;
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
fn verify(layout: &Layout, path: &Path, meta: &crate::catalog::SegmentMeta) -> bool {
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
    layout: &Layout,
    known: &std::collections::HashSet<String>,
    now_ms: i64,
    failpoints: &Failpoints,
    report: &mut RecoveryReport,
) -> Result<()> {
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
    for path in unknown {
        let rel = path.strip_prefix(layout.root()).expect("under the data dir").to_path_buf();
        let dest = layout.quarantine_dir().join(now_ms.to_string()).join(&rel);
        let parent = dest.parent().expect("quarantine path has a parent");
        std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
        std::fs::rename(&path, &dest)
            .and_then(|_| failpoints.hit("recovery.quarantine"))
            .map_err(|e| StoreError::io(&path, e))?;
        warn!(file = %rel.display(), to = %dest.display(), "file unknown to the catalog quarantined");
        report.quarantined.push(rel.to_string_lossy().into_owned());
    }
    if !report.quarantined.is_empty() {
        std::fs::File::open(&hot).and_then(|d| d.sync_all()).map_err(|e| StoreError::io(&hot, e))?;
    }
    Ok(())
}

/// Rewrites that recorded an intent but never committed: their output (if it was written) is tierd's own and was
/// never visible, so it is deleted, and the intent cleared (`recovery.rollback`).
fn roll_back_intents(
    layout: &Layout,
    catalog: &Catalog,
    failpoints: &Failpoints,
    report: &mut RecoveryReport,
) -> Result<()> {
    let intents = catalog.intents()?;
    if intents.is_empty() {
        return Ok(());
    }
    let snapshot = catalog.snapshot();
    let mut clear = Vec::new();
    for intent in intents {
        if snapshot.get(&intent.output).is_none() {
            if let Some(path) = layout.resolve(&intent.location) {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io(path, e)),
                }
            }
            failpoints.hit("recovery.rollback").map_err(|e| StoreError::io(&intent.location, e))?;
            warn!(output = %intent.output, "uncommitted rewrite output removed");
            report.rolled_back.push(intent.output.to_string());
        }
        clear.push(CatalogChange::ClearIntent(intent.output));
    }
    catalog.commit(clear)?;
    Ok(())
}
