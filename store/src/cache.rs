//! The cold-bytes cache: blocks of cold objects kept on the hot disk, so that a query that comes back to a cold
//! segment (its footer and page index, the `time` and `event` chunks of a recent day) does not pay the object store
//! again.
//!
//! A cached unit is one block of one object: key = (object key, block index), the block being a
//! [`BlockChecksums`](crate::catalog::BlockChecksums) block (1 MiB), whose crc32c the catalog holds. Object keys are
//! never reused, so a cached block never goes stale: it is the block of that object or nothing.
//!
//! Invariants:
//! - **Bounded**: the blocks indexed hold at most `cache.max_bytes` (plus blocks being written, one per concurrent
//!   fill); the eviction policy is [`policy::Slru`] (recently *and* repeatedly read blocks stay; see there why).
//! - **Never data it cannot verify**: [`BlockCache::get`] checks length and crc32c against the catalog's block
//!   checksums on every read, so a torn, truncated or corrupt file is a miss (the file is dropped and the block
//!   fetched again), never data.
//! - **Crash-safe**: a block is written to `cache/tmp/` and renamed into place, so a file under its final name is a
//!   complete write (no fsync: after a power loss a file may still be damaged, which the crc check turns into a
//!   miss). Files are renamed in and deleted only under the index lock, so the index and the directory agree.
//!
//! On start the index is **rebuilt from the directory** (not wiped): `tmp/` is emptied, every block file is indexed
//! by its name and size, oldest modification first, and the bound enforced (a smaller `cache.max_bytes` evicts at
//! once). Rebuilding is safe because every read verifies, and worth it because a restart would otherwise send every
//! query of the working set back to the object store. Blocks of objects deleted since are never asked for again
//! and age out. `cache.max_bytes = 0` disables the cache and removes its directory.
//!
//! Erasure: blocks of an object that garbage collection deletes are dropped first ([`BlockCache::purge_object`]),
//! and every gc run drops the blocks of objects the catalog no longer names ([`BlockCache::retain_objects`], which
//! also covers a crash between an object's deletion and the drop): a block of a deleted object would never be read
//! again, but a user deletion must not leave its bytes on the disk either.
//!
//! Layout: `DATA_DIR/cache/<hh>/<object hash>.<block>`, the object hash the 128-bit xxh3 of the object key in hex
//! and `<hh>` its first two digits (256 directories keep each small).

mod policy;
#[cfg(test)]
mod tests;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Deserialize;
use tracing::{info, warn};

pub use policy::{Inserted, Slru, PROTECTED_SHARE};

use crate::error::{Result, StoreError};

/// The `[cache]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Most bytes of cold blocks kept on the hot disk; 0 disables the cache.
    pub max_bytes: u64,
    /// Most bytes of parsed Parquet footers and page indexes of recently read segment copies (hot and cold) kept
    /// in memory (`read::FooterCache`, at the parquet crate's estimate of their size); 0 = none kept.
    pub footer_max_bytes: u64,
}

impl Default for CacheConfig {
    /// 1 GiB: about a thousand 1 MiB blocks, the footers, page indexes and `time`/`event` chunks of many hundreds of
    /// cold segments, a small share of a hot disk sized for `hot.min_free_bytes` (1 GiB) of headroom.
    fn default() -> Self {
        // Footers: 64 MiB, a few thousand segments' footers at tens of KiB each.
        Self { max_bytes: 1 << 30, footer_max_bytes: 64 << 20 }
    }
}

/// One block of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockKey {
    /// xxh3-128 of the object key.
    object: u128,
    block: u64,
}

impl BlockKey {
    pub fn new(object_key: &str, block: u64) -> Self {
        Self { object: object_hash(object_key), block }
    }

    fn file_name(&self) -> String {
        format!("{:032x}.{}", self.object, self.block)
    }

    fn parse(name: &str) -> Option<Self> {
        let (object, block) = name.split_once('.')?;
        if object.len() != 32 || !object.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        let key = Self { object: u128::from_str_radix(object, 16).ok()?, block: block.parse().ok()? };
        (key.file_name() == name).then_some(key)
    }
}

/// What the cache did so far (this process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Blocks evicted to stay within the bound.
    pub evictions: u64,
    /// Bytes written into the cache.
    pub fill_bytes: u64,
    /// Cached files found damaged on read (each also counted as a miss).
    pub corrupt: u64,
    /// Fills skipped because the block would have eaten into the disk's background reserve (the read that fetched
    /// the block is served from the object store all the same).
    pub skipped_full: u64,
    /// Bytes and blocks held now.
    pub bytes: u64,
    pub blocks: usize,
}

/// The cache; see the module documentation. Share it as `Arc`; every method is safe to call concurrently.
#[derive(Debug)]
pub struct BlockCache {
    /// `None`: disabled.
    dir: Option<PathBuf>,
    index: Mutex<Slru<BlockKey>>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    fill_bytes: AtomicU64,
    corrupt: AtomicU64,
    skipped_full: AtomicU64,
    tmp_seq: AtomicU64,
    /// Free bytes a fill must leave on the disk (the background reserve; 0: no check).
    disk_reserve_bytes: AtomicU64,
}

impl BlockCache {
    /// Opens the cache in `dir` (normally `DATA_DIR/cache`), rebuilding its index from the files there. With
    /// `max_bytes = 0` the directory is removed and the cache disabled.
    pub fn open(dir: &Path, cfg: &CacheConfig) -> Result<Self> {
        let io = |path: &Path, e| StoreError::io(path, e);
        if cfg.max_bytes == 0 {
            match fs::remove_dir_all(dir) {
                Ok(()) => info!(dir = %dir.display(), "cold cache disabled; its directory was removed"),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io(dir, e)),
            }
            return Ok(Self::disabled());
        }
        let tmp = dir.join("tmp");
        match fs::remove_dir_all(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io(&tmp, e)),
        }
        fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;

        let mut found: Vec<(std::time::SystemTime, BlockKey, u64)> = Vec::new();
        let mut stray = 0usize;
        for sub in fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let sub = sub.map_err(|e| io(dir, e))?;
            let name = sub.file_name();
            let name = name.to_string_lossy();
            if name == "tmp" {
                continue;
            }
            let path = sub.path();
            let is_bucket = name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit()) && path.is_dir();
            if !is_bucket {
                stray += 1;
                remove_any(&path);
                continue;
            }
            for file in fs::read_dir(&path).map_err(|e| io(&path, e))? {
                let file = file.map_err(|e| io(&path, e))?;
                let meta = file.metadata().map_err(|e| io(&file.path(), e))?;
                let key = BlockKey::parse(&file.file_name().to_string_lossy())
                    .filter(|k| meta.is_file() && k.file_name().starts_with(&*name));
                match key {
                    Some(key) => found.push((meta.modified().unwrap_or(std::time::UNIX_EPOCH), key, meta.len())),
                    None => {
                        stray += 1;
                        remove_any(&file.path());
                    }
                }
            }
        }
        found.sort();
        let cache = Self { dir: Some(dir.to_path_buf()), ..Self::with_bound(cfg.max_bytes) };
        {
            let mut index = cache.index.lock();
            for (_, key, len) in found {
                let inserted = index.insert(key, len);
                if !inserted.admitted {
                    remove_any(&cache.path_of(&key));
                }
                for evicted in inserted.evicted {
                    remove_any(&cache.path_of(&evicted));
                }
            }
            info!(
                dir = %dir.display(),
                blocks = index.len(),
                bytes = index.bytes(),
                max_bytes = cfg.max_bytes,
                stray,
                "cold cache opened"
            );
            metrics::gauge!("tierd_cache_bytes").set(index.bytes() as f64);
        }
        Ok(cache)
    }

    /// A cache that holds nothing: every `get` is a miss, every `put` dropped.
    pub fn disabled() -> Self {
        Self::with_bound(0)
    }

    fn with_bound(max_bytes: u64) -> Self {
        Self {
            dir: None,
            index: Mutex::new(Slru::new(max_bytes)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            fill_bytes: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            skipped_full: AtomicU64::new(0),
            tmp_seq: AtomicU64::new(0),
            disk_reserve_bytes: AtomicU64::new(0),
        }
    }

    /// Fills leave `bytes` free on the disk (the background reserve, `hot.min_free_bytes +
    /// passes.disk_reserve_bytes`): a block that would go below it is not cached.
    pub fn set_disk_reserve(&self, bytes: u64) {
        self.disk_reserve_bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn is_enabled(&self) -> bool {
        self.dir.is_some()
    }

    pub fn max_bytes(&self) -> u64 {
        self.index.lock().max_bytes()
    }

    /// The block, if it is cached and its file has exactly `len` bytes with crc32c `crc`. A damaged file is dropped
    /// and counted (`tierd_cache_corrupt_total`) and the read is a miss. A disabled cache counts nothing.
    pub fn get(&self, key: &BlockKey, len: u64, crc: u32) -> Option<Bytes> {
        self.dir.as_ref()?;
        let found = self.index.lock().access(key);
        let block = if found { self.read_verified(key, len, crc) } else { None };
        match &block {
            Some(_) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("tierd_cache_hits_total").increment(1);
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("tierd_cache_misses_total").increment(1);
            }
        }
        block
    }

    fn read_verified(&self, key: &BlockKey, len: u64, crc: u32) -> Option<Bytes> {
        let path = self.path_of(key);
        let problem = match fs::read(&path) {
            Ok(data) if data.len() as u64 == len && crc32c::crc32c(&data) == crc => return Some(Bytes::from(data)),
            Ok(data) => format!("{} bytes, expected {len} with crc32c {crc:08x}", data.len()),
            // Evicted (or dropped) between the index lookup and the read.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.index.lock().remove(key);
                return None;
            }
            Err(e) => e.to_string(),
        };
        self.corrupt.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("tierd_cache_corrupt_total").increment(1);
        warn!(path = %path.display(), problem, "damaged cached block dropped; fetching it again");
        let mut index = self.index.lock();
        index.remove(key);
        remove_any(&path);
        metrics::gauge!("tierd_cache_bytes").set(index.bytes() as f64);
        None
    }

    /// Caches a verified block (the caller checked it against the catalog). Best effort: a failure to write is
    /// logged and leaves the block uncached; it never fails the read that fetched it.
    pub fn put(&self, key: &BlockKey, block: &[u8]) {
        let Some(dir) = &self.dir else { return };
        if block.len() as u64 > self.max_bytes() {
            return;
        }
        // The cache is a convenience: it never eats into the room ingest and the catalog need.
        let reserve = self.disk_reserve_bytes.load(Ordering::Relaxed);
        let config = "the background reserve: hot.min_free_bytes + passes.disk_reserve_bytes";
        let reason = crate::space::BACKGROUND_RESERVE;
        if crate::space::check(dir, "cache_fill", reason, reserve, block.len() as u64, config).is_err() {
            self.skipped_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let tmp =
            dir.join("tmp").join(format!("{}-{}", std::process::id(), self.tmp_seq.fetch_add(1, Ordering::Relaxed)));
        if let Err(e) = fs::write(&tmp, block) {
            warn!(path = %tmp.display(), error = %e, "cannot write a block to the cold cache");
            remove_any(&tmp);
            return;
        }
        let path = self.path_of(key);
        let mut index = self.index.lock();
        let inserted = index.insert(*key, block.len() as u64);
        let placed = inserted.admitted && {
            let renamed = fs::rename(&tmp, &path).or_else(|e| match e.kind() {
                ErrorKind::NotFound => {
                    fs::create_dir_all(path.parent().expect("in a bucket"))?;
                    fs::rename(&tmp, &path)
                }
                _ => Err(e),
            });
            if let Err(e) = &renamed {
                warn!(path = %path.display(), error = %e, "cannot place a block in the cold cache");
                index.remove(key);
            }
            renamed.is_ok()
        };
        if !placed {
            remove_any(&tmp);
        } else {
            self.fill_bytes.fetch_add(block.len() as u64, Ordering::Relaxed);
            metrics::counter!("tierd_cache_fill_bytes_total").increment(block.len() as u64);
        }
        for evicted in &inserted.evicted {
            remove_any(&self.path_of(evicted));
        }
        self.evictions.fetch_add(inserted.evicted.len() as u64, Ordering::Relaxed);
        metrics::counter!("tierd_cache_evictions_total").increment(inserted.evicted.len() as u64);
        metrics::gauge!("tierd_cache_bytes").set(index.bytes() as f64);
    }

    pub fn stats(&self) -> CacheStats {
        let index = self.index.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            fill_bytes: self.fill_bytes.load(Ordering::Relaxed),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            skipped_full: self.skipped_full.load(Ordering::Relaxed),
            bytes: index.bytes(),
            blocks: index.len(),
        }
    }

    /// Where a block's file lives (whether or not it is cached).
    pub fn path_of(&self, key: &BlockKey) -> PathBuf {
        let name = key.file_name();
        self.dir.as_deref().unwrap_or(Path::new("")).join(&name[..2]).join(name)
    }
}

/// The hash of an object key that names its blocks.
fn object_hash(object_key: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(object_key.as_bytes())
}

impl BlockCache {
    /// Drops every cached block of the cold object `object_key`, from the index and from the disk (also a file the
    /// index lost track of). Garbage collection calls it before it deletes or trashes the object. Returns the
    /// blocks dropped (`tierd_cache_purged_blocks_total`).
    pub fn purge_object(&self, object_key: &str) -> usize {
        let object = object_hash(object_key);
        self.purge_where(|o| o == object, Some(object))
    }

    /// Drops every cached block of an object not in `keep` (cold keys: those the catalog still names, live or
    /// waiting for gc). Garbage collection calls it at each run, so no block of a deleted object outlives a crash
    /// between the object's deletion and [`BlockCache::purge_object`]. Returns the blocks dropped.
    pub fn retain_objects<'a>(&self, keep: impl IntoIterator<Item = &'a str>) -> usize {
        let keep: std::collections::HashSet<u128> = keep.into_iter().map(object_hash).collect();
        self.purge_where(|o| !keep.contains(&o), None)
    }

    /// How many blocks of object `object_key` are on the disk (whatever the index says).
    pub fn blocks_on_disk(&self, object_key: &str) -> usize {
        let object = object_hash(object_key);
        self.files(Some(object)).into_iter().filter(|(k, _)| k.object == object).count()
    }

    /// The block files on disk (those of bucket `of`'s directory only, when given), with their paths.
    fn files(&self, of: Option<u128>) -> Vec<(BlockKey, PathBuf)> {
        let Some(dir) = &self.dir else { return Vec::new() };
        let buckets: Vec<PathBuf> = match of {
            Some(object) => vec![dir.join(&format!("{object:032x}")[..2])],
            None => fs::read_dir(dir)
                .map(|e| e.flatten().map(|e| e.path()).filter(|p| p.is_dir() && !p.ends_with("tmp")).collect())
                .unwrap_or_default(),
        };
        let mut out = Vec::new();
        for bucket in buckets {
            let Ok(entries) = fs::read_dir(&bucket) else { continue };
            for e in entries.flatten() {
                if let Some(key) = BlockKey::parse(&e.file_name().to_string_lossy()) {
                    out.push((key, e.path()));
                }
            }
        }
        out
    }

    /// Drops the blocks whose object `doomed` says, indexed or only on disk, under the index lock (so no fill is
    /// renamed in meanwhile).
    fn purge_where(&self, doomed: impl Fn(u128) -> bool, bucket_of: Option<u128>) -> usize {
        if self.dir.is_none() {
            return 0;
        }
        let mut index = self.index.lock();
        let indexed: Vec<BlockKey> = index.keys().filter(|k| doomed(k.object)).copied().collect();
        for key in &indexed {
            index.remove(key);
        }
        let mut dropped = 0usize;
        for (key, path) in self.files(bucket_of) {
            if doomed(key.object) {
                match fs::remove_file(&path) {
                    Ok(()) => dropped += 1,
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => {
                        warn!(path = %path.display(), error = %e, "cannot drop a cached block of a deleted object")
                    }
                }
            }
        }
        if dropped > 0 {
            info!(blocks = dropped, "cached blocks of deleted cold objects dropped");
        }
        metrics::counter!("tierd_cache_purged_blocks_total").increment(dropped as u64);
        metrics::gauge!("tierd_cache_bytes").set(index.bytes() as f64);
        dropped
    }
}

/// Removes a file or directory, logging (not failing) when it cannot.
fn remove_any(path: &Path) {
    let result = if path.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) };
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => warn!(path = %path.display(), error = %e, "cannot remove a cold cache file"),
    }
}
