//! [`SegmentSource`]: the one tier-aware way to read a segment, used by queries, `GET /v1/segments/{id}` and the
//! rewriter.

use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tierd_codecs::columnar::{self, GroupCountRequest, GroupProgress, ScanRequest};
use tierd_codecs::StoredEvent;
use tokio::runtime::Handle;
use tracing::{error, warn};

use super::blocks::{count_blocks, group_blocks, scan_blocks, Backing, BlockObject};
use super::cold::{ColdReadStats, ColdReads};
use crate::cache::BlockCache;
use crate::catalog::{Format, SegmentMeta};
use crate::cold::ColdStore;
use crate::error::{Result, StoreError};
use crate::layout::{Layout, Tier};
use crate::repair::RepairQueue;

/// Reads segments from whichever copy the catalog lists: the hot copy when there is one (a local read), otherwise
/// the cold copy, with ranged reads through the cache ([`super::cold`]). Scans and counts of a Parquet segment
/// with block checksums read only the blocks they need, from either tier ([`super::blocks`]). Every byte returned
/// was verified against the catalog (whole-copy crc32c, or per-block crc32c for block reads).
///
/// Blocking: call from a blocking thread (cold reads drive the object store with `handle.block_on`). Cheap to
/// clone. Queries and the HTTP API use a source over [`ColdStore::foreground`] (they never wait behind background
/// work); the rewriter, background work, uses the budgeted store.
#[derive(Debug, Clone)]
pub struct SegmentSource {
    layout: Layout,
    cold: Option<ColdReads>,
    /// Where copies that fail their checksum are reported for repair ([`crate::repair`]).
    repairs: Option<Arc<RepairQueue>>,
    /// Parsed footers of recently read Parquet copies, either tier ([`super::FooterCache`]), if kept.
    footers: Option<Arc<super::FooterCache>>,
}

/// The copy a read goes to.
enum Chosen<'a> {
    Hot,
    Cold(&'a ColdReads, &'a str),
}

impl SegmentSource {
    /// Reads hot copies only; a segment whose only copy is cold is an error ([`StoreError::NoReadableCopy`]).
    pub fn hot_only(layout: Layout) -> Self {
        Self { layout, cold: None, repairs: None, footers: None }
    }

    /// Reports copies that fail their checksum to `queue` (the read itself falls back to another copy when there
    /// is one, whether or not a queue is given).
    pub fn with_repairs(mut self, queue: Arc<RepairQueue>) -> Self {
        self.repairs = Some(queue);
        self
    }

    /// Reads hot copies from `layout`, cold ones from `cold` through `cache`, driving the object store with
    /// `handle` (the runtime the store was built on).
    pub fn new(layout: Layout, cold: Arc<ColdStore>, cache: Arc<BlockCache>, handle: Handle) -> Self {
        Self { layout, cold: Some(ColdReads::new(cold, cache, handle)), repairs: None, footers: None }
    }

    /// Keeps the parsed footers of the Parquet copies it reads in `cache`, and takes them from there (block reads
    /// of either tier; see [`super::FooterCache`]).
    pub fn with_footers(mut self, cache: Arc<super::FooterCache>) -> Self {
        self.cold = self.cold.map(|c| c.with_footers(cache.clone()));
        self.footers = Some(cache);
        self
    }

    /// Where bad copies and damaged segments are reported, when given ([`SegmentSource::with_repairs`]).
    pub fn repairs(&self) -> Option<&Arc<RepairQueue>> {
        self.repairs.as_ref()
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The cold side, when the source reads cold copies.
    pub(super) fn cold_reads(&self) -> Option<&ColdReads> {
        self.cold.as_ref()
    }

    /// The cold cache, when the source reads cold copies.
    pub fn cache(&self) -> Option<&Arc<BlockCache>> {
        self.cold.as_ref().map(ColdReads::cache)
    }

    /// What cold reads fetched from the object store so far.
    pub fn cold_stats(&self) -> ColdReadStats {
        self.cold.as_ref().map(ColdReads::stats).unwrap_or_default()
    }

    fn copy<'a>(&'a self, meta: &'a SegmentMeta) -> Result<Chosen<'a>> {
        if meta.hot_path().is_some() {
            return Ok(Chosen::Hot);
        }
        match (meta.cold_key(), &self.cold) {
            (Some(key), Some(cold)) => Ok(Chosen::Cold(cold, key)),
            (Some(_), None) => Err(StoreError::NoReadableCopy {
                id: meta.id,
                message: "its only copy is cold and this reader has no cold tier".into(),
            }),
            (None, _) => Err(StoreError::NoReadableCopy { id: meta.id, message: "the catalog lists no copy".into() }),
        }
    }

    /// Runs `hot` on the hot copy, or `cold` on the cold one. A hot copy missing on disk, or one that fails its
    /// checksum, falls back to the cold copy when there is one (logged, counted in `tierd_read_fallbacks_total`;
    /// a bad copy is reported for repair). `fallback_ok` says whether `hot` left nothing behind that a second read
    /// would repeat (a scan that already delivered events does not fall back: its error stands).
    pub(super) fn with_copy<T>(
        &self,
        meta: &SegmentMeta,
        hot: impl FnOnce() -> Result<T>,
        cold: impl FnOnce(&ColdReads, &str) -> Result<T>,
        fallback_ok: impl Fn() -> bool,
    ) -> Result<T> {
        match self.copy(meta)? {
            Chosen::Cold(reads, key) => cold(reads, key).inspect_err(|e| self.damaged(meta, Tier::Cold, e)),
            Chosen::Hot => match (hot(), meta.cold_key(), &self.cold) {
                (Err(StoreError::SegmentMissing { path, .. }), Some(key), Some(reads)) if fallback_ok() => {
                    warn!(segment = %meta.id, path = %path.display(), key, "hot copy missing; reading the cold copy");
                    metrics::counter!("tierd_read_fallbacks_total", "reason" => "missing").increment(1);
                    cold(reads, key)
                }
                (Err(e @ StoreError::Corrupt { .. }), Some(key), Some(reads)) if fallback_ok() => {
                    warn!(segment = %meta.id, key, error = %e, "hot copy fails its checksum; reading the cold copy");
                    metrics::counter!("tierd_read_fallbacks_total", "reason" => "corrupt").increment(1);
                    if let Some(q) = &self.repairs {
                        q.report(meta.id, Tier::Hot);
                    }
                    cold(reads, key)
                }
                (Err(e), None, _) => {
                    self.damaged(meta, Tier::Hot, &e);
                    Err(e)
                }
                (result, ..) => result,
            },
        }
    }

    /// A copy that is missing or fails its checksum was the segment's only one: reported (once) as damaged.
    fn damaged(&self, meta: &SegmentMeta, tier: Tier, e: &StoreError) {
        let problem = match e {
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::SegmentMissing { .. } => "missing",
            _ => return,
        };
        if let Some(q) = &self.repairs {
            q.report_damaged(meta.id, tier, problem, "read");
        }
    }

    /// For a Parquet segment with block checksums, its hot file opened for reads in verified blocks (and its
    /// catalog location); `None` when the hot copy is read whole (row segments, segments without block
    /// checksums).
    fn hot_blocks<'a>(&self, meta: &'a SegmentMeta) -> Result<Option<(File, &'a str)>> {
        if meta.format != Format::Parquet || meta.blocks.is_none() {
            return Ok(None);
        }
        let path = meta.hot_path().expect("called for a segment with a hot copy");
        Ok(Some((super::open_segment(&self.layout, meta)?, path)))
    }

    /// A segment's committed bytes `[0, bytes)`, whole and verified. Whole reads (exports, rewrites) use cached cold
    /// blocks but do not add to the cache, so one export of a big segment does not push out what queries read.
    pub fn read_committed(&self, meta: &SegmentMeta) -> Result<Bytes> {
        self.with_copy(
            meta,
            || super::read_committed(&self.layout, meta).map(Bytes::from),
            |cold, key| cold.whole(meta, key),
            || true,
        )
    }

    /// Calls `f` for each event of the segment that is in `req`'s window (and of its event name), with the
    /// properties `req` asks for (see [`super::scan`]); returns the bytes read. A cold Parquet copy is read in
    /// ranges: footer, page index and the column chunks `req` needs.
    pub fn scan(&self, meta: &SegmentMeta, req: &ScanRequest, f: impl FnMut(StoredEvent)) -> Result<u64> {
        // Both closures may need `f`; the hot read may fall back to the cold one only if it delivered nothing.
        let f = std::cell::RefCell::new(f);
        let delivered = std::cell::Cell::new(false);
        let call = |e: StoredEvent| {
            delivered.set(true);
            (f.borrow_mut())(e)
        };
        self.with_copy(
            meta,
            || match self.hot_blocks(meta)? {
                Some((file, path)) => scan_blocks(hot_object(meta, file, path, self.footers.as_deref())?, req, call),
                None => {
                    let bytes = Bytes::from(super::read_committed(&self.layout, meta)?);
                    super::scan(meta, bytes, req, call)?;
                    Ok(meta.bytes)
                }
            },
            |cold, key| match meta.format {
                Format::Parquet => cold.scan(meta, key, req, call),
                Format::Rows => {
                    let bytes = cold.whole(meta, key)?;
                    super::scan(meta, bytes, req, call)?;
                    Ok(meta.bytes)
                }
            },
            || !delivered.get(),
        )
    }

    /// Per event name, how many stored events [`SegmentSource::scan`] would deliver for `req` (see
    /// [`super::count_by_event`]: stored copies, not deduplicated), and the bytes read. A cold Parquet copy is read
    /// in ranges, `time` and `event` only.
    pub fn count_by_event(&self, meta: &SegmentMeta, req: &ScanRequest) -> Result<(Vec<(String, u64)>, u64)> {
        self.with_copy(
            meta,
            || match self.hot_blocks(meta)? {
                Some((file, path)) => count_blocks(hot_object(meta, file, path, self.footers.as_deref())?, req),
                None => {
                    let bytes = Bytes::from(super::read_committed(&self.layout, meta)?);
                    Ok((super::count_by_event(meta, bytes, req)?, meta.bytes))
                }
            },
            |cold, key| match meta.format {
                Format::Parquet => cold.count_by_event(meta, key, req),
                Format::Rows => Ok((super::count_by_event(meta, cold.whole(meta, key)?, req)?, meta.bytes)),
            },
            || true,
        )
    }

    /// Per group key, how many stored events of the segment are in `req`'s window and meet its conditions (see
    /// [`super::count_groups`]: stored copies, not deduplicated), and the bytes read. A Parquet copy, hot or cold,
    /// is read in ranges: only the columns the conditions and the key need.
    pub fn count_groups(
        &self,
        meta: &SegmentMeta,
        req: &GroupCountRequest,
        progress: impl FnMut(GroupProgress) -> bool,
    ) -> Result<(Vec<(Value, u64)>, u64)> {
        // Both closures may need `progress`; it only reports, so a read that falls back may call it again.
        let progress = std::cell::RefCell::new(progress);
        let call = |p: GroupProgress| (progress.borrow_mut())(p);
        self.with_copy(
            meta,
            || match self.hot_blocks(meta)? {
                Some((file, path)) => group_blocks(hot_object(meta, file, path, self.footers.as_deref())?, req, call),
                None => {
                    let bytes = Bytes::from(super::read_committed(&self.layout, meta)?);
                    Ok((super::count_groups(meta, bytes, req, call)?, meta.bytes))
                }
            },
            |cold, key| match meta.format {
                Format::Parquet => cold.count_groups(meta, key, req, call),
                Format::Rows => Ok((super::count_groups(meta, cold.whole(meta, key)?, req, call)?, meta.bytes)),
            },
            || true,
        )
    }

    /// Every event of the segment (all properties), in stored order. Read whole, like [`SegmentSource::read_committed`]
    /// (cold blocks are not added to the cache).
    pub fn read_events(&self, meta: &SegmentMeta) -> Result<Vec<StoredEvent>> {
        let bytes = self.read_committed(meta)?;
        match meta.format {
            Format::Rows => {
                let mut out = Vec::with_capacity(meta.rows as usize);
                super::scan(meta, bytes, &super::everything(), |e| out.push(e))?;
                Ok(out)
            }
            Format::Parquet => columnar::decode(&bytes)
                .map(|(_, events)| events)
                .map_err(|e| StoreError::Corrupt { id: meta.id, message: e.to_string() }),
        }
    }

    /// Opens the segment's stored bytes for streaming in chunks of about 1 MiB ([`RawSegment::next_chunk`]).
    /// Opening fails (missing file, missing object, a first block that does not verify) before any byte is handed
    /// out, so an HTTP answer can still carry an error status.
    pub fn open_raw(&self, meta: &SegmentMeta) -> Result<RawSegment> {
        let meta = meta.clone();
        let inner = self.with_copy(
            &meta,
            || Ok(Raw::Hot { file: super::open_segment(&self.layout, &meta)?, offset: 0, crc: 0 }),
            |cold, key| match &meta.blocks {
                Some(_) => {
                    let first = if meta.bytes == 0 { None } else { Some(cold.block(&meta, key, 0)?) };
                    Ok(Raw::ColdBlocks { reads: cold.clone(), key: key.to_string(), next: 1, first })
                }
                None => Ok(Raw::Whole { bytes: cold.whole(&meta, key)?, offset: 0 }),
            },
            || true,
        )?;
        Ok(RawSegment { meta, inner })
    }
}

/// A hot Parquet copy read in verified blocks ([`SegmentSource::hot_blocks`] checked it has block checksums).
fn hot_object<'a>(
    meta: &'a SegmentMeta,
    file: File,
    path: &'a str,
    footers: Option<&'a super::FooterCache>,
) -> Result<BlockObject<'a>> {
    Ok(BlockObject::new(meta, Backing::Hot { file, path })?
        .expect("the segment has block checksums")
        .with_footers(footers))
}

/// A segment's stored bytes being streamed; see [`SegmentSource::open_raw`].
pub struct RawSegment {
    meta: SegmentMeta,
    inner: Raw,
}

enum Raw {
    /// Chunks of the hot file; the crc32c of the whole is checked before the last chunk is handed out.
    Hot { file: File, offset: u64, crc: u32 },
    /// Cold blocks, each verified before it is handed out.
    ColdBlocks { reads: ColdReads, key: String, next: u64, first: Option<Bytes> },
    /// A cold object without block checksums, fetched whole and verified.
    Whole { bytes: Bytes, offset: usize },
}

/// Chunk size of hot and whole-object streams.
const CHUNK: u64 = 1 << 20;

impl RawSegment {
    pub fn meta(&self) -> &SegmentMeta {
        &self.meta
    }

    /// The next verified chunk; `None` at the end. After an error the stream must not be continued.
    pub fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        let meta = &self.meta;
        match &mut self.inner {
            Raw::Hot { file, offset, crc } => {
                if *offset >= meta.bytes {
                    return Ok(None);
                }
                let len = CHUNK.min(meta.bytes - *offset) as usize;
                let chunk = super::read_at(meta, file, *offset, len)?;
                *crc = crc32c::crc32c_append(*crc, &chunk);
                *offset += len as u64;
                if *offset == meta.bytes {
                    if *crc != meta.checksum {
                        metrics::counter!("tierd_read_checksum_errors_total").increment(1);
                        error!(segment = %meta.id, "checksum mismatch while streaming; body aborted");
                        return Err(StoreError::Corrupt {
                            id: meta.id,
                            message: format!("checksum mismatch: catalog {:#010x}, data {:#010x}", meta.checksum, *crc),
                        });
                    }
                    metrics::counter!("tierd_read_bytes_total", "tier" => "hot").increment(meta.bytes);
                }
                Ok(Some(Bytes::from(chunk)))
            }
            Raw::ColdBlocks { reads, key, next, first } => {
                if let Some(block) = first.take() {
                    return Ok(Some(block));
                }
                let blocks = meta.blocks.as_ref().expect("opened with block checksums").crcs.len() as u64;
                if *next >= blocks {
                    return Ok(None);
                }
                let block = reads.block(meta, key, *next)?;
                *next += 1;
                Ok(Some(block))
            }
            Raw::Whole { bytes, offset } => {
                if *offset >= bytes.len() {
                    return Ok(None);
                }
                let end = (*offset + CHUNK as usize).min(bytes.len());
                let chunk = bytes.slice(*offset..end);
                *offset = end;
                Ok(Some(chunk))
            }
        }
    }
}
