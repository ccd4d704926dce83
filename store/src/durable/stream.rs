//! A new durable file written as a stream: what a rewrite's output goes through when it is never whole in memory.
//!
//! The same steps as [`super::write_new_verified`], spread over the writing: the file is created create-only (its
//! directory made durable first), bytes are written in whole blocks as they come (each block's crc32c and the
//! whole file's are computed on the way), then [`NewFile::finish`] writes the last partial block, fsyncs the file
//! and its directory and hits the write failpoint, and [`WrittenFile::read_back`] reads the file from disk a block
//! at a time and recomputes both checksums: a caller commits nothing that points to the file unless they match.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{ensure_dir, parent, sync_parent, HotFile, HotFs};
use crate::error::{Result, StoreError};
use crate::failpoint::Failpoints;

/// A file being written; see the module documentation. Implements [`Write`] (errors are `io::Error`s; the path is
/// added by [`NewFile::finish`] or the caller).
pub struct NewFile {
    path: PathBuf,
    file: Box<dyn HotFile>,
    block_size: usize,
    /// Bytes not written yet: less than one block.
    buf: Vec<u8>,
    written: u64,
    crc: u32,
    block_crcs: Vec<u32>,
    /// Called with the bytes of each write before it is made (the IO budget).
    pace: Option<Box<dyn FnMut(u64) + Send>>,
}

impl std::fmt::Debug for NewFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewFile").field("path", &self.path).field("written", &self.written).finish_non_exhaustive()
    }
}

/// What [`NewFile::finish`] made durable.
#[derive(Debug)]
pub struct WrittenFile {
    pub path: PathBuf,
    file: Box<dyn HotFile>,
    pub len: u64,
    /// crc32c of the whole file, computed while writing.
    pub crc: u32,
    /// crc32c of each `block_size` block, computed while writing.
    pub block_crcs: Vec<u32>,
    pub block_size: u64,
}

impl NewFile {
    /// Creates `path` (create-only: an existing file is an error, never overwritten), its directory made durable.
    /// Blocks of `block_size` bytes are written as they fill.
    pub fn create(fs: &dyn HotFs, path: &Path, block_size: u64) -> Result<Self> {
        assert!(block_size > 0, "block size must be positive");
        ensure_dir(fs, parent(path))?;
        let file = fs.create_new(path).map_err(|e| StoreError::io(path, e))?;
        Ok(Self::over(path, file, block_size))
    }

    /// Writes into `file`, already created at `path`.
    pub fn over(path: &Path, file: Box<dyn HotFile>, block_size: u64) -> Self {
        let block_size = usize::try_from(block_size).expect("a block fits in memory");
        Self {
            path: path.to_path_buf(),
            file,
            block_size,
            buf: Vec::with_capacity(block_size),
            written: 0,
            crc: 0,
            block_crcs: Vec::new(),
            pace: None,
        }
    }

    /// Calls `pace(bytes)` before each write to the disk (to draw from an IO budget).
    pub fn paced(mut self, pace: impl FnMut(u64) + Send + 'static) -> Self {
        self.pace = Some(Box::new(pace));
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes handed to the file so far (written or buffered).
    pub fn len(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes `bytes` (whole blocks, or the last part) at the end of what is written.
    fn write_out(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if let Some(pace) = &mut self.pace {
            pace(bytes.len() as u64);
        }
        self.file.write_all_at(bytes, self.written)?;
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.block_crcs.extend(bytes.chunks(self.block_size).map(crc32c::crc32c));
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Writes what is buffered, fsyncs the file and its directory, hits `write_point`, and checks the length on
    /// disk.
    pub fn finish(mut self, fs: &dyn HotFs, failpoints: &Failpoints, write_point: &'static str) -> Result<WrittenFile> {
        let io = |path: &Path, e| StoreError::io(path, e);
        let rest = std::mem::take(&mut self.buf);
        self.write_out(&rest).map_err(|e| io(&self.path, e))?;
        self.file.sync_all().map_err(|e| io(&self.path, e))?;
        sync_parent(fs, &self.path)?;
        failpoints.hit(write_point).map_err(|e| io(&self.path, e))?;
        let len = self.file.len().map_err(|e| io(&self.path, e))?;
        if len != self.written {
            let message = format!("{len} bytes on disk after writing {}", self.written);
            return Err(io(&self.path, io::Error::other(message)));
        }
        Ok(WrittenFile {
            path: self.path,
            file: self.file,
            len,
            crc: self.crc,
            block_crcs: self.block_crcs,
            block_size: self.block_size as u64,
        })
    }

    /// Writes what is buffered without making anything durable (a spill file, deleted after use).
    pub fn close_unsynced(mut self) -> io::Result<WrittenFile> {
        let rest = std::mem::take(&mut self.buf);
        self.write_out(&rest)?;
        Ok(WrittenFile {
            path: self.path,
            file: self.file,
            len: self.written,
            crc: self.crc,
            block_crcs: self.block_crcs,
            block_size: self.block_size as u64,
        })
    }
}

impl Write for NewFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = self.block_size - self.buf.len();
        let take = room.min(bytes.len());
        self.buf.extend_from_slice(&bytes[..take]);
        if self.buf.len() == self.block_size {
            let block = std::mem::replace(&mut self.buf, Vec::with_capacity(self.block_size));
            self.write_out(&block)?;
        }
        Ok(take)
    }

    /// Buffered bytes stay until a block is full or the file is finished (so blocks start at multiples of the
    /// block size); there is nothing to flush early.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl WrittenFile {
    /// Reads the whole file back from disk, `block_size` bytes at a time, and checks the length, the crc32c of
    /// every block and of the whole against what was computed while writing. `pace` is called before each read.
    pub fn read_back(&self, mut pace: impl FnMut(u64)) -> Result<()> {
        let mismatch = |what: String| {
            StoreError::io(&self.path, io::Error::other(format!("the file does not read back as written: {what}")))
        };
        let mut buf = vec![0u8; self.block_size as usize];
        let (mut offset, mut crc, mut block) = (0u64, 0u32, 0usize);
        while offset < self.len {
            let n = (self.len - offset).min(self.block_size) as usize;
            pace(n as u64);
            self.file.read_exact_at(&mut buf[..n], offset).map_err(|e| StoreError::io(&self.path, e))?;
            let block_crc = crc32c::crc32c(&buf[..n]);
            if self.block_crcs.get(block) != Some(&block_crc) {
                return Err(mismatch(format!("block {block} has crc32c {block_crc:08x}")));
            }
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            offset += n as u64;
            block += 1;
        }
        if block != self.block_crcs.len() || crc != self.crc {
            return Err(mismatch(format!("{block} blocks with crc32c {crc:08x}, {:08x} written", self.crc)));
        }
        Ok(())
    }

    /// `len` bytes at `offset`, read from disk.
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, offset).map_err(|e| StoreError::io(&self.path, e))?;
        Ok(buf)
    }
}
