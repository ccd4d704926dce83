//! Reads of cold copies: ranged, block by block, through the cache, every block verified.
//!
//! A cold object is read in [`BlockChecksums`] blocks (the catalog holds each block's crc32c). For a block a read
//! needs: the cache first ([`BlockCache::get`] verifies it), else the object store (`get_ranges`, one range per run
//! of adjacent missing blocks), each fetched block checked against its crc32c before anything uses it. A mismatch
//! is [`StoreError::Corrupt`] naming the segment, the key and the block, counted in
//! `tierd_checksum_mismatches_total{tier="cold"}` and logged; the block is never returned or cached.
//!
//! Parquet reads are planned by `tierd_codecs::columnar` ([`ColumnarFooter`]): the last block (footer length), the
//! footer and page index, then only the column chunks of the row groups the request can match. The scan then runs
//! over a [`SparseObject`] holding just those blocks.
//!
//! Queries' blocks fill the cache; whole-object reads (exports, rewrites) use cached blocks but do not add theirs,
//! so that one export of a big segment does not push the queries' working set out.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tierd_codecs::columnar::{self, ChunkReader, ColumnarFooter, ScanRequest, FOOTER_TAIL_LEN};
use tierd_codecs::StoredEvent;
use tokio::runtime::Handle;
use tracing::error;

use super::sparse::SparseObject;
use crate::cache::{BlockCache, BlockKey};
use crate::catalog::{BlockChecksums, Location, SegmentMeta};
use crate::cold::ColdStore;
use crate::error::{Result, StoreError};

/// What cold reads fetched from the object store so far (all clones of one source together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ColdReadStats {
    /// Object-store calls (`get`, `get_range`, `get_ranges`).
    pub requests: u64,
    /// Byte ranges asked for (a `get_ranges` call may ask for several).
    pub ranges: u64,
    pub bytes_fetched: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    ranges: AtomicU64,
    bytes: AtomicU64,
}

/// Whether blocks fetched from the object store go into the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    Yes,
    No,
}

/// The cold side of a [`super::SegmentSource`]. Blocking: drives the object store through `handle`.
#[derive(Clone)]
pub(crate) struct ColdReads {
    store: Arc<ColdStore>,
    cache: Arc<BlockCache>,
    handle: Handle,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for ColdReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdReads")
            .field("store", &self.store.url())
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// One cold copy being read: the segment, its key and block checksums, and the blocks fetched so far.
pub(crate) struct ColdObject<'a> {
    reads: &'a ColdReads,
    meta: &'a SegmentMeta,
    key: &'a str,
    blocks: &'a BlockChecksums,
    fill: Fill,
    object: SparseObject,
}

impl ColdReads {
    pub(crate) fn new(store: Arc<ColdStore>, cache: Arc<BlockCache>, handle: Handle) -> Self {
        Self { store, cache, handle, counters: Arc::default() }
    }

    pub(crate) fn cache(&self) -> &Arc<BlockCache> {
        &self.cache
    }

    pub(crate) fn stats(&self) -> ColdReadStats {
        ColdReadStats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            ranges: self.counters.ranges.load(Ordering::Relaxed),
            bytes_fetched: self.counters.bytes.load(Ordering::Relaxed),
        }
    }

    fn fetched(&self, ranges: usize, bytes: u64) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.counters.ranges.fetch_add(ranges as u64, Ordering::Relaxed);
        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        metrics::counter!("tierd_read_bytes_total", "tier" => "cold").increment(bytes);
    }

    /// Starts a read of `meta`'s cold copy at `key`; `None` when the catalog has no block checksums for it (the
    /// caller reads the object whole, [`ColdReads::whole`]).
    pub(crate) fn object<'a>(
        &'a self,
        meta: &'a SegmentMeta,
        key: &'a str,
        fill: Fill,
    ) -> Result<Option<ColdObject<'a>>> {
        let Some(blocks) = &meta.blocks else { return Ok(None) };
        let expected = meta.bytes.div_ceil(blocks.block_size.max(1));
        if blocks.block_size == 0 || blocks.crcs.len() as u64 != expected {
            return Err(StoreError::Corrupt {
                id: meta.id,
                message: format!(
                    "the catalog's block checksums ({} blocks of {} bytes) do not cover the {}-byte cold object {key}",
                    blocks.crcs.len(),
                    blocks.block_size,
                    meta.bytes
                ),
            });
        }
        let object = SparseObject::new(meta.bytes, blocks.block_size);
        Ok(Some(ColdObject { reads: self, meta, key, blocks, fill, object }))
    }

    /// The whole object: every block (verified, from the cache when there), or without block checksums one GET
    /// verified against the segment's checksum.
    pub(crate) fn whole(&self, meta: &SegmentMeta, key: &str) -> Result<Bytes> {
        match self.object(meta, key, Fill::No)? {
            Some(mut object) => {
                let n = object.blocks.crcs.len() as u64;
                object.ensure_blocks(&(0..n).collect::<Vec<_>>())?;
                let mut out = BytesMut::with_capacity(meta.bytes as usize);
                for i in 0..n {
                    out.extend_from_slice(&object.block(i));
                }
                let bytes = out.freeze();
                crate::moves::check_copy(meta, &Location::cold(key), &bytes)?;
                Ok(bytes)
            }
            None => {
                let bytes = self.handle.block_on(self.store.get(key))?;
                self.fetched(1, bytes.len() as u64);
                crate::moves::check_copy(meta, &Location::cold(key), &bytes)?;
                Ok(bytes)
            }
        }
    }

    /// Block `i` of the object, verified (for streaming; not added to the cache).
    pub(crate) fn block(&self, meta: &SegmentMeta, key: &str, i: u64) -> Result<Bytes> {
        let mut object = self.object(meta, key, Fill::No)?.expect("streamed block by block only with block checksums");
        object.ensure_blocks(&[i])?;
        Ok(object.block(i))
    }

    /// Scans a cold Parquet copy reading only what `req` needs; returns the bytes of the blocks read.
    pub(crate) fn scan(
        &self,
        meta: &SegmentMeta,
        key: &str,
        req: &ScanRequest,
        f: impl FnMut(StoredEvent),
    ) -> Result<u64> {
        let Some(mut object) = self.object(meta, key, Fill::Yes)? else {
            let bytes = self.whole(meta, key)?;
            super::scan(meta, bytes.clone(), req, f)?;
            return Ok(bytes.len() as u64);
        };
        let footer = object.footer()?;
        object.ensure(&footer.scan_ranges(req))?;
        let read = object.object.bytes_held();
        footer.scan(object.object, req, f).map_err(|e| corrupt(meta, e))?;
        Ok(read)
    }

    /// Counts a cold Parquet copy's events by name reading only `time` and `event` of what `req` needs; returns the
    /// counts and the bytes of the blocks read.
    pub(crate) fn count_by_event(
        &self,
        meta: &SegmentMeta,
        key: &str,
        req: &ScanRequest,
    ) -> Result<(Vec<(String, u64)>, u64)> {
        let Some(mut object) = self.object(meta, key, Fill::Yes)? else {
            let bytes = self.whole(meta, key)?;
            let len = bytes.len() as u64;
            return Ok((super::count_by_event(meta, bytes, req)?, len));
        };
        let footer = object.footer()?;
        object.ensure(&footer.count_ranges(req))?;
        let read = object.object.bytes_held();
        let (counts, _) = footer.count_by_event(object.object, req).map_err(|e| corrupt(meta, e))?;
        Ok((counts, read))
    }
}

fn corrupt(meta: &SegmentMeta, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { id: meta.id, message: e.to_string() }
}

impl ColdObject<'_> {
    /// A held block.
    fn block(&self, i: u64) -> Bytes {
        let range = self.blocks.block_range(i as usize, self.meta.bytes);
        self.object.get_bytes(range.start, (range.end - range.start) as usize).expect("the block is held")
    }

    /// Loads the Parquet footer and page index: the tail first, then whatever of the footer and the page index
    /// lies outside the blocks already held.
    fn footer(&mut self) -> Result<ColumnarFooter> {
        let len = self.meta.bytes;
        if len < FOOTER_TAIL_LEN {
            return Err(corrupt(self.meta, format!("a {len}-byte object is not a Parquet file")));
        }
        let tail = len - FOOTER_TAIL_LEN..len;
        self.ensure(std::slice::from_ref(&tail))?;
        let tail = self.get(tail)?;
        let footer = columnar::footer_range(len, &tail).map_err(|e| corrupt(self.meta, e))?;
        self.ensure(std::slice::from_ref(&footer))?;
        let footer = self.get(footer)?;
        if let Some(index) = columnar::page_index_range(&footer).map_err(|e| corrupt(self.meta, e))? {
            if index.end > len {
                return Err(corrupt(self.meta, format!("the page index {index:?} lies past the end ({len})")));
            }
            self.ensure(&[index])?;
        }
        ColumnarFooter::load(&self.object).map_err(|e| corrupt(self.meta, e))
    }

    fn get(&self, range: Range<u64>) -> Result<Bytes> {
        self.object.get_bytes(range.start, (range.end - range.start) as usize).map_err(|e| corrupt(self.meta, e))
    }

    /// Makes sure the blocks covering `ranges` are held.
    fn ensure(&mut self, ranges: &[Range<u64>]) -> Result<()> {
        if let Some(r) = ranges.iter().find(|r| r.end > self.meta.bytes) {
            return Err(corrupt(
                self.meta,
                format!("bytes {r:?} lie past the end of the object ({})", self.meta.bytes),
            ));
        }
        let missing = self.object.missing(ranges);
        self.ensure_blocks(&missing)
    }

    /// Makes sure blocks `wanted` (ascending) are held: from the cache, else fetched (runs of adjacent blocks as
    /// one range each, all ranges in one `get_ranges`) and verified.
    fn ensure_blocks(&mut self, wanted: &[u64]) -> Result<()> {
        let cache = &self.reads.cache;
        let len = self.meta.bytes;
        let mut runs: Vec<Range<u64>> = Vec::new();
        for &i in wanted {
            let range = self.blocks.block_range(i as usize, len);
            let key = BlockKey::new(self.key, i);
            match cache.get(&key, range.end - range.start, self.blocks.crcs[i as usize]) {
                Some(block) => self.object.insert(i, block),
                None => match runs.last_mut() {
                    Some(run) if run.end == i => run.end = i + 1,
                    _ => runs.push(i..i + 1),
                },
            }
        }
        if runs.is_empty() {
            return Ok(());
        }
        let bs = self.blocks.block_size;
        let byte_ranges: Vec<Range<u64>> = runs.iter().map(|r| r.start * bs..(r.end * bs).min(len)).collect();
        let fetched = self.reads.handle.block_on(self.reads.store.get_ranges(self.key, &byte_ranges))?;
        self.reads.fetched(byte_ranges.len(), fetched.iter().map(|b| b.len() as u64).sum());
        for ((run, range), bytes) in runs.iter().zip(&byte_ranges).zip(fetched) {
            if bytes.len() as u64 != range.end - range.start {
                return Err(self.mismatch(run.start, format!("{} bytes came back for range {range:?}", bytes.len())));
            }
            for i in run.clone() {
                let block = self.blocks.block_range(i as usize, len);
                let data = bytes.slice((block.start - range.start) as usize..(block.end - range.start) as usize);
                let crc = crc32c::crc32c(&data);
                let expected = self.blocks.crcs[i as usize];
                if crc != expected {
                    return Err(self.mismatch(
                        i,
                        format!("bytes {block:?} have crc32c {crc:08x}, the catalog says {expected:08x}"),
                    ));
                }
                if self.fill == Fill::Yes {
                    self.reads.cache.put(&BlockKey::new(self.key, i), &data);
                }
                self.object.insert(i, data);
            }
        }
        Ok(())
    }

    /// A fetched block that does not match the catalog: counted, logged, an error.
    fn mismatch(&self, block: u64, what: String) -> StoreError {
        metrics::counter!("tierd_checksum_mismatches_total", "tier" => "cold").increment(1);
        error!(segment = %self.meta.id, key = self.key, block, problem = %what, "cold block does not match the catalog");
        StoreError::Corrupt {
            id: self.meta.id,
            message: format!("cold object {} block {block}: {what}; not used", self.key),
        }
    }
}
