//! One copy of a segment read block by block: the blocks of [`BlockChecksums`], each checked against its crc32c
//! before anything uses it, gathered in a [`SparseObject`] that the Parquet reader reads from.
//!
//! The copy is either a cold object (blocks from the cache, else ranged GETs, see [`super::cold`]) or a hot file
//! (blocks read with `pread`). Both tiers plan Parquet reads the same way ([`ColumnarFooter`]): the last block
//! (footer length), the footer and page index, then only the column chunks of the row groups a request can match,
//! so a query touching two columns of a hot segment reads and checks those, not the whole file.
//!
//! A block that does not match is [`StoreError::Corrupt`] naming the segment, the copy and the block, counted in
//! `tierd_checksum_mismatches_total{tier}` and logged; it is never returned or cached.

use std::fs::File;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tierd_codecs::columnar::{
    self, ChunkReader, ColumnarFooter, GroupCountRequest, GroupProgress, ScanRequest, FOOTER_TAIL_LEN,
};
use tierd_codecs::StoredEvent;
use tracing::error;

use super::footers::{CopyKey, FooterCache};
use super::sparse::SparseObject;
use crate::cache::{BlockCache, BlockKey};
use crate::catalog::{BlockChecksums, SegmentMeta};
use crate::error::{Result, StoreError};

/// Where a cold object's blocks come from: a local cache, and the object store (`super::cold::ColdReads`).
pub(crate) trait RemoteBlocks {
    fn block_cache(&self) -> &BlockCache;
    /// Fetches byte ranges of the object at `key` (one request).
    fn fetch_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>>;
}

/// Whether blocks fetched from the object store go into the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    Yes,
    No,
}

/// Where a [`BlockObject`]'s blocks come from.
pub(crate) enum Backing<'a> {
    /// A cold object: the cache first, then ranged GETs (added to the cache when `fill` says so).
    Cold { reads: &'a dyn RemoteBlocks, key: &'a str, fill: Fill },
    /// A hot file, opened; `path` is its catalog location (for messages).
    Hot { file: File, path: &'a str },
}

impl Backing<'_> {
    fn tier(&self) -> &'static str {
        match self {
            Backing::Cold { .. } => "cold",
            Backing::Hot { .. } => "hot",
        }
    }

    fn name(&self) -> &str {
        match self {
            Backing::Cold { key, .. } => key,
            Backing::Hot { path, .. } => path,
        }
    }
}

/// One copy of a segment being read in verified blocks; see the module documentation.
pub(crate) struct BlockObject<'a> {
    meta: &'a SegmentMeta,
    blocks: &'a BlockChecksums,
    backing: Backing<'a>,
    pub(crate) object: SparseObject,
    /// Where parsed footers of recently read copies are kept, if anywhere.
    footers: Option<&'a FooterCache>,
}

impl<'a> BlockObject<'a> {
    /// Starts a read of `meta`'s copy behind `backing`; `None` when the catalog has no block checksums for the
    /// segment (the caller reads the copy whole and checks the whole-copy crc32c).
    pub(crate) fn new(meta: &'a SegmentMeta, backing: Backing<'a>) -> Result<Option<Self>> {
        let Some(blocks) = &meta.blocks else { return Ok(None) };
        let expected = meta.bytes.div_ceil(blocks.block_size.max(1));
        if blocks.block_size == 0 || blocks.crcs.len() as u64 != expected {
            return Err(StoreError::Corrupt {
                id: meta.id,
                message: format!(
                    "the catalog's block checksums ({} blocks of {} bytes) do not cover the {}-byte {} copy {}",
                    blocks.crcs.len(),
                    blocks.block_size,
                    meta.bytes,
                    backing.tier(),
                    backing.name()
                ),
            });
        }
        let object = SparseObject::new(meta.bytes, blocks.block_size);
        Ok(Some(Self { meta, blocks, backing, object, footers: None }))
    }

    /// Takes the footer from `cache` when it holds this copy's, and keeps the footer parsed here there otherwise.
    pub(crate) fn with_footers(mut self, cache: Option<&'a FooterCache>) -> Self {
        self.footers = cache;
        self
    }

    /// How many blocks the copy has.
    pub(crate) fn block_count(&self) -> u64 {
        self.blocks.crcs.len() as u64
    }

    /// A held block.
    pub(crate) fn block(&self, i: u64) -> Bytes {
        let range = self.blocks.block_range(i as usize, self.meta.bytes);
        self.object.get_bytes(range.start, (range.end - range.start) as usize).expect("the block is held")
    }

    /// Every block, concatenated: the whole copy (each block verified; the caller may check the whole-copy crc).
    pub(crate) fn whole(&mut self) -> Result<Bytes> {
        let n = self.block_count();
        self.ensure_blocks(&(0..n).collect::<Vec<_>>())?;
        let mut out = BytesMut::with_capacity(self.meta.bytes as usize);
        for i in 0..n {
            out.extend_from_slice(&self.block(i));
        }
        Ok(out.freeze())
    }

    /// The Parquet footer and page index: from the footer cache when it holds this copy's, else loaded
    /// ([`BlockObject::load_footer`]) and kept there.
    pub(crate) fn footer(&mut self) -> Result<Arc<ColumnarFooter>> {
        let Some(cache) = self.footers else { return self.load_footer().map(Arc::new) };
        let key = CopyKey::new(self.meta, self.backing.tier(), self.backing.name());
        if let Some(footer) = cache.get(&key) {
            return Ok(footer);
        }
        let footer = Arc::new(self.load_footer()?);
        cache.put(key, footer.clone());
        Ok(footer)
    }

    /// Loads the Parquet footer and page index: the tail first, then whatever of the footer and the page index
    /// lies outside the blocks already held.
    fn load_footer(&mut self) -> Result<ColumnarFooter> {
        let len = self.meta.bytes;
        if len < FOOTER_TAIL_LEN {
            return Err(self.corrupt(format!("a {len}-byte copy is not a Parquet file")));
        }
        let tail = len - FOOTER_TAIL_LEN..len;
        self.ensure(std::slice::from_ref(&tail))?;
        let tail = self.get(tail)?;
        let footer = columnar::footer_range(len, &tail).map_err(|e| self.corrupt(e))?;
        self.ensure(std::slice::from_ref(&footer))?;
        let footer = self.get(footer)?;
        if let Some(index) = columnar::page_index_range(&footer).map_err(|e| self.corrupt(e))? {
            if index.end > len {
                return Err(self.corrupt(format!("the page index {index:?} lies past the end ({len})")));
            }
            self.ensure(&[index])?;
        }
        ColumnarFooter::load(&self.object).map_err(|e| self.corrupt(e))
    }

    pub(crate) fn corrupt(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt { id: self.meta.id, message: e.to_string() }
    }

    fn get(&self, range: Range<u64>) -> Result<Bytes> {
        self.object.get_bytes(range.start, (range.end - range.start) as usize).map_err(|e| self.corrupt(e))
    }

    /// Makes sure the blocks covering `ranges` are held.
    pub(crate) fn ensure(&mut self, ranges: &[Range<u64>]) -> Result<()> {
        if let Some(r) = ranges.iter().find(|r| r.end > self.meta.bytes) {
            return Err(self.corrupt(format!("bytes {r:?} lie past the end of the copy ({})", self.meta.bytes)));
        }
        let missing = self.object.missing(ranges);
        self.ensure_blocks(&missing)
    }

    /// Makes sure blocks `wanted` (ascending) are held: cold ones from the cache when there, the rest read (runs
    /// of adjacent blocks as one range each: one `get_ranges` call for a cold copy, one `pread` per run for a hot
    /// one) and verified.
    pub(crate) fn ensure_blocks(&mut self, wanted: &[u64]) -> Result<()> {
        let len = self.meta.bytes;
        let mut runs: Vec<Range<u64>> = Vec::new();
        for &i in wanted {
            let cached = match &self.backing {
                Backing::Cold { reads, key, .. } => {
                    let range = self.blocks.block_range(i as usize, len);
                    reads.block_cache().get(
                        &BlockKey::new(key, i),
                        range.end - range.start,
                        self.blocks.crcs[i as usize],
                    )
                }
                Backing::Hot { .. } => None,
            };
            match cached {
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
        let fetched = match &self.backing {
            Backing::Cold { reads, key, .. } => reads.fetch_ranges(key, &byte_ranges)?,
            Backing::Hot { file, .. } => {
                let mut out = Vec::with_capacity(byte_ranges.len());
                for r in &byte_ranges {
                    out.push(Bytes::from(super::read_at(self.meta, file, r.start, (r.end - r.start) as usize)?));
                }
                metrics::counter!("tierd_read_bytes_total", "tier" => "hot")
                    .increment(byte_ranges.iter().map(|r| r.end - r.start).sum());
                out
            }
        };
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
                if let Backing::Cold { reads, key, fill: Fill::Yes } = &self.backing {
                    reads.block_cache().put(&BlockKey::new(key, i), &data);
                }
                self.object.insert(i, data);
            }
        }
        Ok(())
    }

    /// A block that does not match the catalog: counted, logged, an error.
    fn mismatch(&self, block: u64, what: String) -> StoreError {
        let (tier, name) = (self.backing.tier(), self.backing.name());
        metrics::counter!("tierd_checksum_mismatches_total", "tier" => tier).increment(1);
        error!(segment = %self.meta.id, tier, copy = name, block, problem = %what, "block does not match the catalog");
        let kind = if tier == "cold" { "cold object" } else { "hot file" };
        StoreError::Corrupt { id: self.meta.id, message: format!("{kind} {name} block {block}: {what}; not used") }
    }
}

/// Scans a Parquet copy read in blocks: footer and page index, then the column chunks `req` needs; returns the
/// bytes of the blocks read.
pub(crate) fn scan_blocks(mut object: BlockObject<'_>, req: &ScanRequest, f: impl FnMut(StoredEvent)) -> Result<u64> {
    let footer = object.footer()?;
    object.ensure(&footer.scan_ranges(req))?;
    let read = object.object.bytes_held();
    footer.scan(object.object.clone(), req, f).map(|_| read).map_err(|e| object.corrupt(e))
}

/// Counts a Parquet copy read in blocks by event name, reading only `time` and `event` of what `req` needs;
/// returns the counts and the bytes of the blocks read.
pub(crate) fn count_blocks(mut object: BlockObject<'_>, req: &ScanRequest) -> Result<(Vec<(String, u64)>, u64)> {
    let footer = object.footer()?;
    object.ensure(&footer.count_ranges(req))?;
    let read = object.object.bytes_held();
    footer.count_by_event(object.object.clone(), req).map(|(counts, _)| (counts, read)).map_err(|e| object.corrupt(e))
}

/// Counts a Parquet copy read in blocks per group key, reading only the columns `req`'s conditions and key need;
/// returns the counts and the bytes of the blocks read.
pub(crate) fn group_blocks(
    mut object: BlockObject<'_>,
    req: &GroupCountRequest,
    progress: impl FnMut(GroupProgress) -> bool,
) -> Result<(Vec<(Value, u64)>, u64)> {
    let footer = object.footer()?;
    object.ensure(&footer.group_ranges(req))?;
    let read = object.object.bytes_held();
    footer
        .count_groups(object.object.clone(), req, progress)
        .map(|(counts, _)| (counts, read))
        .map_err(|e| object.corrupt(e))
}
