//! Reads of cold copies: ranged, block by block, through the cache, every block verified.
//!
//! A cold object is read in [`crate::catalog::BlockChecksums`] blocks (the catalog holds each block's crc32c). For a block a read
//! needs: the cache first ([`BlockCache::get`] verifies it), else the object store (`get_ranges`, one range per run
//! of adjacent missing blocks), each fetched block checked against its crc32c before anything uses it. A mismatch
//! is [`crate::StoreError::Corrupt`] naming the segment, the key and the block, counted in
//! `tierd_checksum_mismatches_total{tier="cold"}` and logged; the block is never returned or cached.
//!
//! Parquet reads are planned by `tierd_codecs::columnar` (`ColumnarFooter`) in [`super::blocks`], the same way
//! for hot copies: the last block (footer length), the footer and page index, then only the column chunks of the
//! row groups the request can match. The scan then runs over a `SparseObject` holding just those blocks.
//!
//! Queries' blocks fill the cache; whole-object reads (exports, rewrites) use cached blocks but do not add theirs,
//! so that one export of a big segment does not push the queries' working set out.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tierd_codecs::columnar::{GroupCountRequest, GroupProgress, ScanRequest};
use tierd_codecs::StoredEvent;
use tokio::runtime::Handle;

use super::blocks::{count_blocks, group_blocks, scan_blocks, Backing, BlockObject, Fill, RemoteBlocks};
use crate::cache::BlockCache;
use crate::catalog::{Location, SegmentMeta};
use crate::cold::ColdStore;
use crate::error::Result;

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

/// The cold side of a [`super::SegmentSource`]. Blocking: drives the object store through `handle`.
#[derive(Clone)]
pub(crate) struct ColdReads {
    store: Arc<ColdStore>,
    cache: Arc<BlockCache>,
    handle: Handle,
    counters: Arc<Counters>,
    /// Parsed footers of recently read copies, if kept ([`super::FooterCache`]).
    footers: Option<Arc<super::FooterCache>>,
}

impl std::fmt::Debug for ColdReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdReads")
            .field("store", &self.store.url())
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl RemoteBlocks for ColdReads {
    fn block_cache(&self) -> &BlockCache {
        &self.cache
    }

    fn fetch_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        ColdReads::fetch_ranges(self, key, ranges)
    }
}

impl ColdReads {
    pub(crate) fn new(store: Arc<ColdStore>, cache: Arc<BlockCache>, handle: Handle) -> Self {
        Self { store, cache, handle, counters: Arc::default(), footers: None }
    }

    pub(crate) fn with_footers(mut self, footers: Arc<super::FooterCache>) -> Self {
        self.footers = Some(footers);
        self
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
    ) -> Result<Option<BlockObject<'a>>> {
        Ok(BlockObject::new(meta, Backing::Cold { reads: self, key, fill })?
            .map(|o| o.with_footers(self.footers.as_deref())))
    }

    /// Fetches byte ranges of the object at `key` (one `get_ranges` call), counted in the source's stats.
    pub(crate) fn fetch_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let fetched = self.handle.block_on(self.store.get_ranges(key, ranges))?;
        self.fetched(ranges.len(), fetched.iter().map(|b| b.len() as u64).sum());
        Ok(fetched)
    }

    /// The whole object: every block (verified, from the cache when there), or without block checksums one GET
    /// verified against the segment's checksum.
    pub(crate) fn whole(&self, meta: &SegmentMeta, key: &str) -> Result<Bytes> {
        let bytes = match self.object(meta, key, Fill::No)? {
            Some(mut object) => object.whole()?,
            None => {
                let bytes = self.handle.block_on(self.store.get(key))?;
                self.fetched(1, bytes.len() as u64);
                bytes
            }
        };
        crate::verify::check_copy(meta, &Location::cold(key), &bytes)?;
        Ok(bytes)
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
        match self.object(meta, key, Fill::Yes)? {
            Some(object) => scan_blocks(object, req, f),
            None => {
                let bytes = self.whole(meta, key)?;
                super::scan(meta, bytes.clone(), req, f)?;
                Ok(bytes.len() as u64)
            }
        }
    }

    /// Counts a cold Parquet copy's events by name reading only `time` and `event` of what `req` needs; returns the
    /// counts and the bytes of the blocks read.
    pub(crate) fn count_by_event(
        &self,
        meta: &SegmentMeta,
        key: &str,
        req: &ScanRequest,
    ) -> Result<(Vec<(String, u64)>, u64)> {
        match self.object(meta, key, Fill::Yes)? {
            Some(object) => count_blocks(object, req),
            None => {
                let bytes = self.whole(meta, key)?;
                let len = bytes.len() as u64;
                Ok((super::count_by_event(meta, bytes, req)?, len))
            }
        }
    }

    /// Counts a cold Parquet copy's events per group key reading only the columns `req` needs; returns the counts
    /// and the bytes of the blocks read.
    pub(crate) fn count_groups(
        &self,
        meta: &SegmentMeta,
        key: &str,
        req: &GroupCountRequest,
        progress: impl FnMut(GroupProgress) -> bool,
    ) -> Result<(Vec<(Value, u64)>, u64)> {
        match self.object(meta, key, Fill::Yes)? {
            Some(object) => group_blocks(object, req, progress),
            None => {
                let bytes = self.whole(meta, key)?;
                let len = bytes.len() as u64;
                Ok((super::count_groups(meta, bytes, req, progress)?, len))
            }
        }
    }
}
