//! Free space on the data directory's file system, and the one way every writer refuses to eat into it.
//!
//! The hot segments, the cold cache, the trash and the sled catalog share one file system. Three reserves are kept
//! on it, each larger than the next, so that work stops in order of importance as space runs out and comes back by
//! itself when space is freed (nothing to restart):
//!
//! | free bytes below                                       | refused                                             |
//! |--------------------------------------------------------|-----------------------------------------------------|
//! | `hot.min_free_bytes + passes.disk_reserve_bytes` (+ size) | rewrites, moves, restores, cache fills (background) |
//! | `hot.min_free_bytes` (+ size)                          | ingest (503, `HotTierFull`)                         |
//! | `catalog.min_free_bytes`                               | every sled write: commits, intents, leases, heat,   |
//! |                                                        | deletion requests, seals                            |
//!
//! The last one exists because sled 0.34 cannot be allowed to meet `ENOSPC`: a failed write of its log is kept as
//! the database's global error and every later operation fails until the process restarts (see ARCHITECTURE.md,
//! "Disk full"). A refusal here happens before anything is written, so it is never ambiguous.
//!
//! Every refusal is counted in `tierd_disk_refusals_total{what, reason}`, `reason` naming the reserve.

use std::path::Path;

use crate::error::{Result, StoreError};

/// The `reason` label of a refusal by the background reserve.
pub const BACKGROUND_RESERVE: &str = "background_reserve";
/// The `reason` label of a refusal by the catalog's headroom.
pub const CATALOG_HEADROOM: &str = "catalog_headroom";

/// Bytes available to this process on the file system holding `path`; `None` if it cannot be read (then no check
/// refuses: a statvfs failure is not evidence of a full disk).
pub fn free_bytes(path: &Path) -> Option<u64> {
    fs4::available_space(path).ok()
}

/// Fails with [`StoreError::DiskReserve`], counted under (`what`, `reason`), when writing `bytes` more on the file
/// system of `path` would leave fewer than `reserve` bytes free. `config` names the keys that set the reserve, for
/// the message. A reserve of 0 checks nothing.
pub fn check(
    path: &Path,
    what: &'static str,
    reason: &'static str,
    reserve: u64,
    bytes: u64,
    config: &str,
) -> Result<()> {
    if reserve == 0 {
        return Ok(());
    }
    let Some(free) = free_bytes(path) else { return Ok(()) };
    if free < reserve.saturating_add(bytes) {
        refused(what, reason);
        return Err(StoreError::DiskReserve(format!(
            "{free} bytes free on the data directory's disk: a {what} writing {bytes} bytes would leave less than \
             the {reserve} bytes kept free ({config}); it waits for space"
        )));
    }
    Ok(())
}

/// Counts one refusal.
pub fn refused(what: &'static str, reason: &'static str) {
    metrics::counter!("tierd_disk_refusals_total", "what" => what, "reason" => reason).increment(1);
}

/// The emergency ballast's file name, in the data directory.
pub const BALLAST_FILE: &str = "emergency-ballast";

/// Keeps the emergency ballast: a file of `bytes` allocated bytes (`fallocate`) in `root`, the data directory,
/// given back when the disk is full at start. sled cannot open a database on a full disk (its open writes; on a
/// full tmpfs it fails with ENOSPC, see ARCHITECTURE.md), so without it a node whose disk filled up would not
/// restart. At start, before the catalog opens:
/// - with fewer than `bytes` free, the ballast is removed (logged loudly), so the catalog opens, recovery runs and
///   reads are served; ingest and the passes stay refused by their reserves until space is freed;
/// - without a ballast, one is made when at least twice `bytes` are free (never by filling the disk itself);
///   the running daemon makes it again once space is back ([`remake_ballast`], every housekeeping tick).
///
/// Returns the bytes the ballast holds now. `bytes = 0` removes it.
pub fn keep_ballast(root: &Path, bytes: u64) -> std::io::Result<u64> {
    let path = root.join(BALLAST_FILE);
    let held = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let free = free_bytes(root).unwrap_or(u64::MAX);
    if held > 0 && (bytes == 0 || free < bytes || held != bytes) {
        std::fs::remove_file(&path)?;
        if bytes > 0 && free < bytes {
            tracing::error!(
                free,
                released = held,
                "DISK FULL at start: the emergency ballast was removed so that the catalog can open and reads are \
                 served; free space on the data directory's disk: the ballast is made again once twice its size is free"
            );
        }
        metrics::gauge!("tierd_emergency_ballast_bytes").set(0.0);
        return Ok(0);
    }
    if held == bytes {
        metrics::gauge!("tierd_emergency_ballast_bytes").set(bytes as f64);
        return Ok(bytes);
    }
    if free < bytes.saturating_mul(2) {
        tracing::warn!(free, bytes, "no room for the emergency ballast; it is made again once twice its size is free");
        metrics::gauge!("tierd_emergency_ballast_bytes").set(0.0);
        return Ok(0);
    }
    make_ballast(root, bytes)
}

/// While the daemon runs: makes the ballast again once space is back (at least twice `bytes` free) after a start on
/// a full disk gave it back. It never removes a ballast: while the daemon runs the reserves keep writers off the
/// last bytes, and the ballast is there for the next start. Returns the bytes the ballast holds now.
pub fn remake_ballast(root: &Path, bytes: u64) -> std::io::Result<u64> {
    if bytes == 0 {
        return Ok(0);
    }
    match std::fs::metadata(root.join(BALLAST_FILE)) {
        Ok(m) => return Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if free_bytes(root).unwrap_or(0) < bytes.saturating_mul(2) {
        return Ok(0);
    }
    let made = make_ballast(root, bytes)?;
    tracing::info!(bytes, "space is back: the emergency ballast was made again");
    Ok(made)
}

fn make_ballast(root: &Path, bytes: u64) -> std::io::Result<u64> {
    let path = root.join(BALLAST_FILE);
    // Written whole under another name, then renamed: a crash never leaves a short ballast under its name.
    let tmp = root.join(format!("{BALLAST_FILE}.tmp"));
    let file = std::fs::File::create(&tmp)?;
    fs4::fs_std::FileExt::allocate(&file, bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(root)?.sync_all()?;
    metrics::gauge!("tierd_emergency_ballast_bytes").set(bytes as f64);
    Ok(bytes)
}

#[cfg(test)]
mod tests;
