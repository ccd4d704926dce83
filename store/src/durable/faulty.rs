//! A [`HotFs`] that fails on purpose: `EIO`, `ENOSPC` or a short write at chosen operations, so that tests can
//! fail any durable step in process and check that nothing is acknowledged or committed that is not on disk.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::{HotFile, HotFs};

/// The operations a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsOp {
    CreateNew,
    OpenRw,
    Write,
    Read,
    SyncData,
    SyncAll,
    SetLen,
    CreateDir,
    SyncDir,
    Remove,
    Rename,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsFaultKind {
    /// The operation fails with `EIO`, doing nothing.
    Eio,
    /// The operation fails with `ENOSPC`, doing nothing.
    Enospc,
    /// A write stores only the first half of its buffer and reports success: a disk that lies. Other operations
    /// fail with `EIO`.
    ShortWrite,
}

/// One injected fault: hits the operations `op` on paths containing `path_contains`, after letting `skip` of them
/// pass, `times` times (0: every time from then on).
#[derive(Debug)]
pub struct FsFault {
    pub op: FsOp,
    pub path_contains: String,
    pub skip: u32,
    pub times: u32,
    pub kind: FsFaultKind,
    seen: AtomicU32,
}

impl FsFault {
    pub fn new(op: FsOp, kind: FsFaultKind) -> Self {
        Self { op, path_contains: String::new(), skip: 0, times: 0, kind, seen: AtomicU32::new(0) }
    }

    /// Only on paths containing `s`.
    pub fn on_paths(mut self, s: &str) -> Self {
        self.path_contains = s.to_string();
        self
    }

    /// Lets the first `n` matching operations pass.
    pub fn after(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }

    /// Fires `n` times, then lets everything pass.
    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }

    /// Whether this call is hit (counts it when it matches).
    fn fires(&self, op: FsOp, path: &Path) -> bool {
        if op != self.op || !path.to_string_lossy().contains(&self.path_contains) {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::SeqCst);
        n >= self.skip && (self.times == 0 || n < self.skip + self.times)
    }

    /// How many matching operations it saw.
    pub fn seen(&self) -> u32 {
        self.seen.load(Ordering::SeqCst)
    }
}

/// Wraps a [`HotFs`], and every file it opens, with faults.
#[derive(Debug, Clone)]
pub struct FaultyFs {
    inner: Arc<dyn HotFs>,
    faults: Arc<Vec<FsFault>>,
}

impl FaultyFs {
    pub fn new(inner: Arc<dyn HotFs>, faults: Vec<FsFault>) -> Self {
        Self { inner, faults: Arc::new(faults) }
    }

    /// The faults, with how often each matched.
    pub fn faults(&self) -> &[FsFault] {
        &self.faults
    }

    fn check(&self, op: FsOp, path: &Path) -> Result<(), FsFaultKind> {
        match self.faults.iter().find(|f| f.fires(op, path)) {
            Some(f) => Err(f.kind),
            None => Ok(()),
        }
    }

    fn fail(&self, op: FsOp, path: &Path) -> io::Result<()> {
        self.check(op, path).map_err(|kind| injected(kind, op, path))
    }
}

fn injected(kind: FsFaultKind, op: FsOp, path: &Path) -> io::Error {
    let (errno, what) = match kind {
        FsFaultKind::Enospc => (28, "ENOSPC"),
        FsFaultKind::Eio | FsFaultKind::ShortWrite => (5, "EIO"),
    };
    let os = io::Error::from_raw_os_error(errno);
    io::Error::new(os.kind(), format!("injected {what} on {op:?} of {}: {os}", path.display()))
}

impl FaultyFs {
    /// `f`, unless a fault hits operation `op` on `path` first.
    fn guard<T>(&self, op: FsOp, path: &Path, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        self.fail(op, path)?;
        f()
    }

    /// A file opened by the inner file system, wrapped so that its operations meet the faults too.
    fn wrap(&self, path: &Path, inner: Box<dyn HotFile>) -> Box<dyn HotFile> {
        Box::new(FaultyFile { inner, fs: self.clone(), path: path.to_path_buf() })
    }
}

impl HotFs for FaultyFs {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn HotFile>> {
        self.guard(FsOp::CreateNew, path, || self.inner.create_new(path)).map(|f| self.wrap(path, f))
    }

    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn HotFile>> {
        self.guard(FsOp::OpenRw, path, || self.inner.open_rw(path)).map(|f| self.wrap(path, f))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.guard(FsOp::CreateDir, path, || self.inner.create_dir_all(path))
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.guard(FsOp::SyncDir, path, || self.inner.sync_dir(path))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.guard(FsOp::Remove, path, || self.inner.remove_file(path))
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.guard(FsOp::Remove, path, || self.inner.remove_dir_all(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.guard(FsOp::Rename, from, || self.inner.rename(from, to))
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn HotFile>,
    fs: FaultyFs,
    path: std::path::PathBuf,
}

impl HotFile for FaultyFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        match self.fs.check(FsOp::Write, &self.path) {
            Ok(()) => self.inner.write_all_at(buf, offset),
            Err(FsFaultKind::ShortWrite) => self.inner.write_all_at(&buf[..buf.len() / 2], offset),
            Err(kind) => Err(injected(kind, FsOp::Write, &self.path)),
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.fs.guard(FsOp::Read, &self.path, || self.inner.read_exact_at(buf, offset))
    }

    fn sync_data(&self) -> io::Result<()> {
        self.fs.guard(FsOp::SyncData, &self.path, || self.inner.sync_data())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.fs.guard(FsOp::SyncAll, &self.path, || self.inner.sync_all())
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.guard(FsOp::SetLen, &self.path, || self.inner.set_len(len))
    }
}
