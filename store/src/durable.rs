//! Durable file steps on the hot disk, written once.
//!
//! Every crash-safe step of the store that touches the hot directory goes through here: a new file is written
//! create-only (never over an existing one), fsynced, its directory fsynced (so the name survives a crash too), and
//! read back from disk before anything points to it; a file leaves by a rename or removal followed by an fsync of
//! the directories involved. The steps run over a [`HotFs`], the hot tier's file API: [`OsFs`] is the real one,
//! [`FaultyFs`] wraps any other and injects `EIO`, `ENOSPC` and short writes at chosen operations, so tests can fail
//! any step in process, without killing anything (as `crate::cold::faults` does for the object store), and
//! [`PowerLossFs`] keeps what was not made durable apart, so that a simulated power cut loses it.

mod faulty;
mod powerloss;
mod stream;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub use faulty::{FaultyFs, FsFault, FsFaultKind, FsOp};
pub use powerloss::{CrashReport, PowerLossFs};
pub use stream::{NewFile, WrittenFile};

use crate::error::{Result, StoreError};
use crate::failpoint::Failpoints;

/// An open file of the hot tier. Positioned reads and writes only: the hot writer appends at committed lengths it
/// tracks itself, and verification reads from offset 0.
#[allow(clippy::len_without_is_empty)] // a file's length, not a collection's
pub trait HotFile: Send + Sync + std::fmt::Debug {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// fsync of the data (and of the metadata needed to read it back: the length).
    fn sync_data(&self) -> io::Result<()>;
    /// fsync of data and all metadata.
    fn sync_all(&self) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn set_len(&self, len: u64) -> io::Result<()>;
}

/// The hot tier's view of the file system. Paths are absolute (resolved by [`crate::layout::Layout`]).
pub trait HotFs: Send + Sync + std::fmt::Debug {
    /// Creates `path` for reading and writing; fails with `AlreadyExists` if anything is there.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn HotFile>>;
    /// Opens an existing file for reading and writing.
    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn HotFile>>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// fsync of a directory: makes the names created, renamed or removed in it durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

impl HotFile for File {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

impl HotFs for OsFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn HotFile>> {
        let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        Ok(Box::new(file))
    }

    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn HotFile>> {
        Ok(Box::new(std::fs::OpenOptions::new().read(true).write(true).open(path)?))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
}

fn parent(path: &Path) -> &Path {
    path.parent().expect("hot tier paths are absolute file paths")
}

/// fsync of the directory holding `path`.
pub fn sync_parent(fs: &dyn HotFs, path: &Path) -> Result<()> {
    let dir = parent(path);
    fs.sync_dir(dir).map_err(|e| StoreError::io(dir, e))
}

/// Directories this process created whose fsync into their parent failed (a transient EIO): the next
/// [`ensure_dir`] that meets one syncs it again instead of taking its existence for durability.
static UNSYNCED_DIRS: parking_lot::Mutex<BTreeSet<PathBuf>> = parking_lot::Mutex::new(BTreeSet::new());

/// Makes `dir` exist; every directory it had to create is fsynced into its parent, so it survives a crash.
///
/// One lock serializes the check and the creation: a caller that finds the directory made by another thread finds
/// it synced too (else a file made durable in it could still go with it at a power loss), and a directory whose
/// parent fsync failed is synced again by the next call rather than trusted because it exists.
pub fn ensure_dir(fs: &dyn HotFs, dir: &Path) -> Result<()> {
    let mut unsynced = UNSYNCED_DIRS.lock();
    ensure_dir_locked(fs, dir, &mut unsynced)
}

fn ensure_dir_locked(fs: &dyn HotFs, dir: &Path, unsynced: &mut BTreeSet<PathBuf>) -> Result<()> {
    if dir.exists() {
        if unsynced.contains(dir) {
            sync_parent(fs, dir)?;
            unsynced.remove(dir);
        }
        return Ok(());
    }
    if let Some(up) = dir.parent() {
        ensure_dir_locked(fs, up, unsynced)?;
    }
    fs.create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    sync_parent(fs, dir).inspect_err(|_| {
        unsynced.insert(dir.to_path_buf());
    })
}

/// A new file at `path` holding `bytes`, durable: parent directory made, create-only (an existing file is an
/// error, never overwritten), written, fsynced, directory fsynced (which makes its name durable). Returns the open
/// file.
pub fn create_new_synced(fs: &dyn HotFs, path: &Path, bytes: &[u8]) -> Result<Box<dyn HotFile>> {
    ensure_dir(fs, parent(path))?;
    let io = |e| StoreError::io(path, e);
    let file = fs.create_new(path).map_err(io)?;
    file.write_all_at(bytes, 0).map_err(io)?;
    file.sync_all().map_err(io)?;
    sync_parent(fs, path)?;
    Ok(file)
}

/// [`create_new_synced`], then failpoint `write_point`, then the whole file read back from disk: what a caller
/// verifies (size and checksum against the catalog, a decode) before it commits anything that points to the file.
/// A file whose length on disk is not `bytes.len()` is an error here.
pub fn write_new_verified(
    fs: &dyn HotFs,
    failpoints: &Failpoints,
    path: &Path,
    bytes: &[u8],
    write_point: &'static str,
) -> Result<Vec<u8>> {
    let file = create_new_synced(fs, path, bytes)?;
    let io = |e| StoreError::io(path, e);
    failpoints.hit(write_point).map_err(io)?;
    let len = file.len().map_err(io)?;
    if len != bytes.len() as u64 {
        return Err(io(io::Error::other(format!("{len} bytes on disk after writing {}", bytes.len()))));
    }
    let mut back = vec![0u8; bytes.len()];
    file.read_exact_at(&mut back, 0).map_err(io)?;
    Ok(back)
}

/// Removes the file at `path` and fsyncs its directory. A file that is already gone is fine (a crash after an
/// earlier attempt); returns whether it was there.
pub fn remove_synced(fs: &dyn HotFs, path: &Path) -> Result<bool> {
    match fs.remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StoreError::io(path, e)),
    }
    sync_parent(fs, path)?;
    Ok(true)
}

/// Renames `from` to `to` (making `to`'s directory) and fsyncs both directories, the destination's first: a crash
/// between the two syncs leaves the file under both names (the next attempt renames it over its copy), never under
/// neither. (Syncing the source's directory first lost trashed and quarantined files to a power cut between the
/// syncs: `power_loss_tests`, gc.) A source that is already gone is fine (a crash after an earlier attempt);
/// returns whether it was there.
pub fn rename_synced(fs: &dyn HotFs, from: &Path, to: &Path) -> Result<bool> {
    ensure_dir(fs, parent(to))?;
    match fs.rename(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StoreError::io(from, e)),
    }
    sync_parent(fs, to)?;
    sync_parent(fs, from)?;
    Ok(true)
}

/// Cuts the file at `path` to `len` bytes and fsyncs it.
pub fn truncate_synced(fs: &dyn HotFs, path: &Path, len: u64) -> Result<()> {
    let io = |e| StoreError::io(path, e);
    let file = fs.open_rw(path).map_err(io)?;
    file.set_len(len).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Whether an I/O error means the disk is full.
pub fn is_out_of_space(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) // ENOSPC
}
