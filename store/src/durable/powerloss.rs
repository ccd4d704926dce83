//! A [`HotFs`] that loses power: whatever the process wrote but did not make durable is gone after
//! [`PowerLossFs::crash`], as after a real power cut (and unlike `kill -9`, which keeps the page cache).
//!
//! The model is the one of SQLite's crash-test VFS and FoundationDB's simulated disks, kept to what POSIX promises:
//! - bytes written to a file, and a change of its length, are durable once that file is `sync_data`/`sync_all`ed;
//! - a name created, renamed or removed in a directory is durable once that directory is `sync_dir`ed. A rename
//!   touches two names: the new one is durable with its directory, the removal of the old one with its own (so a
//!   half-synced rename can leave the file under both names, or under neither, as POSIX allows);
//! - a directory made by `create_dir_all` is durable once its parent is synced; what lies under a directory that is
//!   not is gone with it.
//!
//! Everything is written through to the real directory as the process runs, so code that reads the hot tier outside
//! the seam (`std::fs::metadata` in recovery, `File::open` in the read path, `read_dir` in gc and recovery) sees
//! exactly what the process would see on a real machine before the cut: the page cache. What this type keeps beside
//! it is the durable state (each file's last synced contents, each directory's last synced names) and the writes not
//! yet synced; [`PowerLossFs::crash`] puts the real directory back to the durable state. Writes to the hot directory
//! that bypass the seam are not modelled: none exist in `store/src` outside tests (the block cache writes its own
//! directory with `std::fs`, unsynced by design: every cached block is verified on read and refetched if bad).
//!
//! Paths the seam never touched are taken to be durable as they are; the first operation on a path adopts it.
//!
//! A power cut is scheduled by counting operations: [`PowerLossFs::cut_after`]`(k)` turns the power off once the
//! k-th state-changing operation (create, write, set_len, a sync, a directory change, or a catalog flush reported
//! through [`PowerLossFs::external_step`]) has taken effect. From then on every operation fails with `EIO` until
//! [`PowerLossFs::crash`] (the reboot); handles opened before the crash stay dead after it.
//!
//! The sled catalog does not go through this seam. When [`PowerLossFs::watch_catalog`] names its directory, the
//! catalog's flushes count as operations, fail once the power is off, and the directory's files are copied at the
//! moment the power goes off and put back by the crash. That copy is the catalog as of its last flush because
//! every catalog write the store relies on is flushed before the next step (commits and intents flush; see
//! RELIABILITY.md, "Power loss (simulated)"), so sled has nothing unflushed when any other operation runs.
//!
//! With [`PowerLossFs::with_torn_writes`], a crash keeps, of each surviving file's unsynced writes, a seeded random
//! prefix (whole writes in order, then part of one): a torn tail. Unsynced directory entries are always dropped.

mod image;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rand_xoshiro::rand_core::{RngCore as _, SeedableRng as _};
use rand_xoshiro::SplitMix64;

use self::image::{image_of, restore_dir, Image};
use super::{HotFile, HotFs};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u64),
    Dir,
}

/// A change to a file not yet made durable by a sync of it.
#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

impl Pending {
    fn apply(&self, content: &mut Vec<u8>) {
        match self {
            // An empty write changes nothing, not even the length (as `pwrite` of 0 bytes).
            Pending::Write { bytes, .. } if bytes.is_empty() => {}
            Pending::Write { offset, bytes } => {
                let start = *offset as usize;
                let end = start + bytes.len();
                if content.len() < end {
                    content.resize(end, 0);
                }
                content[start..end].copy_from_slice(bytes);
            }
            Pending::SetLen(len) => content.resize(*len as usize, 0),
        }
    }
}

#[derive(Debug, Default)]
struct FileState {
    /// The contents as of the last sync.
    durable: Vec<u8>,
    /// What was done to the file since, in order.
    pending: Vec<Pending>,
}

/// What [`PowerLossFs::crash`] did to the real directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CrashReport {
    /// Paths whose file or directory was removed (its creation, or a rename to it, was never durable).
    pub removed: Vec<PathBuf>,
    /// Paths whose file was rewritten to its durable contents, or put back (an undone removal or rename).
    pub restored: Vec<PathBuf>,
    /// Whether the catalog directory was put back to its copy at the cut.
    pub catalog_restored: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Bumped by each crash: handles of an older epoch are dead.
    epoch: u64,
    next_id: u64,
    files: HashMap<u64, FileState>,
    /// Paths the model follows (each either present in `current`/`durable` or absent from them).
    known: BTreeSet<PathBuf>,
    /// What the process sees.
    current: BTreeMap<PathBuf, Node>,
    /// What a crash leaves (before directories that are not durable take their contents with them).
    durable: BTreeMap<PathBuf, Node>,
    /// State-changing operations since the start or the last crash.
    ops: u64,
    cut_after: Option<u64>,
    off: bool,
    torn_seed: Option<u64>,
    crashes: u64,
    catalog_dir: Option<PathBuf>,
    /// The catalog directory's files (relative path, contents; `None` for a directory) when the power went off.
    catalog_image: Option<Image>,
}

/// A hot-tier file system whose power can be cut (see the module documentation). Clones share one disk.
#[derive(Clone, Default)]
pub struct PowerLossFs {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for PowerLossFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock();
        f.debug_struct("PowerLossFs").field("ops", &s.ops).field("off", &s.off).field("crashes", &s.crashes).finish()
    }
}

fn eio(what: String) -> io::Error {
    let os = io::Error::from_raw_os_error(5);
    io::Error::new(os.kind(), format!("{what}: {os}"))
}

fn power_is_off() -> io::Error {
    eio("power is off (simulated power loss)".into())
}

fn outside_the_seam(path: &Path) -> io::Error {
    io::Error::other(format!(
        "{} changed outside the hot tier's file API; the power-loss model lost track",
        path.display()
    ))
}

impl PowerLossFs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Crashes keep a seeded random prefix of each surviving file's unsynced writes.
    pub fn with_torn_writes(self, seed: u64) -> Self {
        self.state.lock().torn_seed = Some(seed);
        self
    }

    /// Treats the sled catalog in `dir` as part of the machine: its flushes count and fail with the power, and a
    /// crash puts the directory back as it was when the power went off (see the module documentation).
    pub fn watch_catalog(&self, dir: &Path) {
        self.state.lock().catalog_dir = Some(dir.to_path_buf());
    }

    /// The power goes off once `k` state-changing operations have been done since the start (or the last crash);
    /// at once if that many are done already.
    pub fn cut_after(&self, k: u64) {
        let mut s = self.state.lock();
        s.cut_after = Some(k);
        if s.ops >= k {
            s.power_off();
        }
    }

    /// State-changing operations done since the start or the last crash.
    pub fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    pub fn is_off(&self) -> bool {
        self.state.lock().off
    }

    /// Cuts the power now.
    pub fn power_off(&self) {
        self.state.lock().power_off();
    }

    /// A durable step outside this file system (the catalog's flush): fails without running `f` while the power is
    /// off, else runs it and counts it as one operation (which may be the one after which the power goes off).
    pub fn external_step(&self, f: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let mut s = self.state.lock();
        if s.off {
            return Err(power_is_off());
        }
        f()?;
        s.count();
        Ok(())
    }

    /// The reboot after a power cut (cutting the power first if it is on): puts the real directory back to its
    /// durable state, and the catalog directory back to its copy at the cut. Drop everything that uses the store
    /// (and the catalog) first: handles from before the crash fail from now on.
    pub fn crash(&self) -> io::Result<CrashReport> {
        let mut s = self.state.lock();
        if !s.off {
            s.power_off();
        }
        let mut report = CrashReport::default();
        // What survives: durable entries under directories that are durable themselves.
        let mut target: BTreeMap<PathBuf, Node> = BTreeMap::new();
        for p in &s.known {
            let Some(node) = s.durable.get(p) else { continue };
            let reachable = p.ancestors().skip(1).all(|a| !s.known.contains(a) || s.durable.get(a) == Some(&Node::Dir));
            if reachable {
                target.insert(p.clone(), *node);
            }
        }
        let mut rng = s.torn_seed.map(|seed| SplitMix64::seed_from_u64(seed ^ s.crashes.wrapping_mul(0x9e37_79b9)));
        let mut contents: HashMap<PathBuf, Vec<u8>> = HashMap::new();
        for (p, node) in &target {
            if let Node::File(id) = node {
                let f = &s.files[id];
                let mut c = f.durable.clone();
                if let Some(rng) = rng.as_mut() {
                    torn_prefix(&mut c, &f.pending, rng);
                }
                contents.insert(p.clone(), c);
            }
        }
        // Deepest first: remove what does not survive.
        for p in s.known.iter().rev() {
            let Ok(meta) = std::fs::symlink_metadata(p) else { continue };
            let wrong_kind = match target.get(p) {
                None => true,
                Some(Node::Dir) => !meta.is_dir(),
                Some(Node::File(_)) => meta.is_dir(),
            };
            if wrong_kind {
                if meta.is_dir() {
                    std::fs::remove_dir_all(p)?;
                } else {
                    std::fs::remove_file(p)?;
                }
                if !target.contains_key(p) {
                    report.removed.push(p.clone());
                }
            }
        }
        // Shallowest first: put back what survives.
        for (p, node) in &target {
            match node {
                Node::Dir => std::fs::create_dir_all(p)?,
                Node::File(_) => {
                    let want = &contents[p];
                    if std::fs::read(p).ok().as_ref() != Some(want) {
                        std::fs::write(p, want)?;
                        report.restored.push(p.clone());
                    }
                }
            }
        }
        // The machine after the reboot: what survived is all there is, durable.
        s.files.clear();
        s.current.clear();
        s.durable.clear();
        for (p, node) in target {
            let node = match node {
                Node::Dir => Node::Dir,
                Node::File(_) => Node::File(s.new_file(contents.remove(&p).unwrap_or_default())),
            };
            s.current.insert(p.clone(), node);
            s.durable.insert(p, node);
        }
        if let (Some(dir), Some(image)) = (s.catalog_dir.clone(), s.catalog_image.take()) {
            restore_dir(&dir, &image)?;
            report.catalog_restored = true;
        }
        s.epoch += 1;
        s.ops = 0;
        s.cut_after = None;
        s.off = false;
        s.crashes += 1;
        Ok(report)
    }

    /// Runs a state-changing operation while the power is on, and counts it.
    fn step<T>(&self, f: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
        let mut s = self.state.lock();
        if s.off {
            return Err(power_is_off());
        }
        let out = f(&mut s)?;
        s.count();
        Ok(out)
    }

    fn open_file(&self, s: &State, path: &Path, file: File) -> io::Result<Box<dyn HotFile>> {
        let Some(Node::File(id)) = s.current.get(path) else { return Err(outside_the_seam(path)) };
        Ok(Box::new(PowerLossFile { file, id: *id, epoch: s.epoch, fs: self.clone(), path: path.to_path_buf() }))
    }
}

impl State {
    fn count(&mut self) {
        self.ops += 1;
        if self.cut_after.is_some_and(|k| self.ops >= k) {
            self.power_off();
        }
    }

    fn power_off(&mut self) {
        if self.off {
            return;
        }
        self.off = true;
        if let Some(dir) = &self.catalog_dir {
            // sled has nothing unflushed at this moment (see the module documentation): its files are the catalog
            // as of its last flush.
            self.catalog_image = Some(image_of(dir).expect("copy the catalog directory at the power cut"));
        }
    }

    fn new_file(&mut self, durable: Vec<u8>) -> u64 {
        self.next_id += 1;
        self.files.insert(self.next_id, FileState { durable, pending: Vec::new() });
        self.next_id
    }

    /// Starts following `path`: what is on disk now was never touched through the seam, so it is durable as it is.
    fn adopt(&mut self, path: &Path) -> io::Result<()> {
        if self.known.contains(path) {
            return Ok(());
        }
        let node = match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => Some(Node::Dir),
            Ok(_) => Some(Node::File(self.new_file(std::fs::read(path)?))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        self.known.insert(path.to_path_buf());
        if let Some(node) = node {
            self.current.insert(path.to_path_buf(), node);
            self.durable.insert(path.to_path_buf(), node);
        }
        Ok(())
    }

    /// [`State::adopt`] of `path` and of everything on disk under it.
    fn adopt_tree(&mut self, path: &Path) -> io::Result<()> {
        self.adopt(path)?;
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            for entry in std::fs::read_dir(path)? {
                self.adopt_tree(&entry?.path())?;
            }
        }
        Ok(())
    }

    /// The followed paths under `dir` (not `dir` itself), at any depth.
    fn under(&self, dir: &Path) -> Vec<PathBuf> {
        self.known
            .range(dir.to_path_buf()..)
            .take_while(|p| p.starts_with(dir))
            .filter(|p| *p != dir)
            .cloned()
            .collect()
    }

    fn file(&mut self, id: u64) -> &mut FileState {
        self.files.get_mut(&id).expect("an open file is followed")
    }
}

/// Applies to `content` a random prefix of `pending`: whole changes in order, then part of one write.
fn torn_prefix(content: &mut Vec<u8>, pending: &[Pending], rng: &mut SplitMix64) {
    if pending.is_empty() {
        return;
    }
    let whole = (rng.next_u64() % (pending.len() as u64 + 1)) as usize;
    for p in &pending[..whole] {
        p.apply(content);
    }
    if let Some(Pending::Write { offset, bytes }) = pending.get(whole) {
        let n = (rng.next_u64() % (bytes.len() as u64 + 1)) as usize;
        if n > 0 {
            Pending::Write { offset: *offset, bytes: bytes[..n].to_vec() }.apply(content);
        }
    }
}

impl HotFs for PowerLossFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn HotFile>> {
        self.step(|s| {
            s.adopt(path)?;
            let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
            let id = s.new_file(Vec::new());
            s.current.insert(path.to_path_buf(), Node::File(id));
            self.open_file(s, path, file)
        })
    }

    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn HotFile>> {
        let mut s = self.state.lock();
        if s.off {
            return Err(power_is_off());
        }
        s.adopt(path)?;
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
        self.open_file(&s, path, file)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.step(|s| {
            let missing: Vec<PathBuf> = path.ancestors().take_while(|a| !a.exists()).map(Path::to_path_buf).collect();
            for dir in missing.iter().rev() {
                s.adopt(dir)?;
            }
            std::fs::create_dir_all(path)?;
            for dir in missing {
                s.current.insert(dir, Node::Dir);
            }
            Ok(())
        })
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.step(|s| {
            if !std::fs::metadata(path)?.is_dir() {
                return Err(io::Error::new(io::ErrorKind::NotADirectory, path.display().to_string()));
            }
            for p in s.under(path).into_iter().filter(|p| p.parent() == Some(path)) {
                match s.current.get(&p).copied() {
                    Some(node) => s.durable.insert(p, node),
                    None => s.durable.remove(&p),
                };
            }
            Ok(())
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.step(|s| {
            s.adopt(path)?;
            std::fs::remove_file(path)?;
            s.current.remove(path).map(drop).ok_or_else(|| outside_the_seam(path))
        })
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.step(|s| {
            s.adopt_tree(path)?;
            std::fs::remove_dir_all(path)?;
            for p in s.under(path) {
                s.current.remove(&p);
            }
            s.current.remove(path);
            Ok(())
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step(|s| {
            if std::fs::symlink_metadata(from).is_ok_and(|m| m.is_dir()) {
                // The store renames files only; a directory's children would have to move with it.
                return Err(io::Error::new(io::ErrorKind::Unsupported, "PowerLossFs renames files only"));
            }
            s.adopt(from)?;
            s.adopt(to)?;
            std::fs::rename(from, to)?;
            let node = s.current.remove(from).ok_or_else(|| outside_the_seam(from))?;
            s.current.insert(to.to_path_buf(), node);
            Ok(())
        })
    }
}

/// A file opened through [`PowerLossFs`]: reads and writes go to the real file; writes are remembered as pending
/// until a sync of this file makes them durable.
struct PowerLossFile {
    file: File,
    id: u64,
    /// The boot this handle was opened in.
    epoch: u64,
    fs: PowerLossFs,
    path: PathBuf,
}

impl std::fmt::Debug for PowerLossFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerLossFile").field("path", &self.path).field("epoch", &self.epoch).finish()
    }
}

impl PowerLossFile {
    fn alive(&self, s: &State) -> io::Result<()> {
        if s.epoch != self.epoch {
            return Err(eio(format!("{} was opened before a crash", self.path.display())));
        }
        Ok(())
    }

    /// A state-changing operation on this file.
    fn step(&self, f: impl FnOnce(&mut State) -> io::Result<()>) -> io::Result<()> {
        self.fs.step(|s| {
            self.alive(s)?;
            f(s)
        })
    }

    /// A read-only operation on this file.
    fn look<T>(&self, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let s = self.fs.state.lock();
        if s.off {
            return Err(power_is_off());
        }
        self.alive(&s)?;
        f()
    }

    fn sync(&self) -> io::Result<()> {
        self.step(|s| {
            let f = s.file(self.id);
            for p in std::mem::take(&mut f.pending) {
                p.apply(&mut f.durable);
            }
            Ok(())
        })
    }
}

impl HotFile for PowerLossFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.step(|s| {
            FileExt::write_all_at(&self.file, buf, offset)?;
            s.file(self.id).pending.push(Pending::Write { offset, bytes: buf.to_vec() });
            Ok(())
        })
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.look(|| FileExt::read_exact_at(&self.file, buf, offset))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }

    fn len(&self) -> io::Result<u64> {
        self.look(|| Ok(self.file.metadata()?.len()))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.step(|s| {
            self.file.set_len(len)?;
            s.file(self.id).pending.push(Pending::SetLen(len));
            Ok(())
        })
    }
}
