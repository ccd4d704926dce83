//! The tier-aware read path: committed bytes of a segment, verified, and the events in them.
//!
//! A reader never trusts bytes past a segment's committed length (an open segment may have an unacknowledged tail
//! being written), and never returns bytes whose checksum does not match the catalog: a mismatch is an error that is
//! counted and logged.
//!
//! [`SegmentSource`] is the one way queries, `GET /v1/segments/{id}` and the rewriter read a segment, whatever its
//! tier: the hot copy when there is one, else the cold copy, read in verified blocks through the cache on the hot
//! disk (`crate::cache`), a Parquet copy in ranges (footer, page index, then only the column chunks a request needs;
//! see `cold`). The free functions below read hot copies and scan bytes already in memory.

mod blocks;
mod cold;
mod footers;
mod source;
mod sparse;
mod stream;
#[cfg(test)]
mod tests;

pub use cold::ColdReadStats;
pub use footers::{FooterCache, FooterCacheStats};
pub use source::{RawSegment, SegmentSource};
pub(crate) use sparse::SparseObject;
pub(crate) use stream::GroupBytes;
pub use stream::{ParquetEvents, RowFrames};

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use serde_json::Value;
use tierd_codecs::columnar::{self, GroupCountRequest, GroupProgress, ScanRequest};
use tierd_codecs::rows::{self, SegmentHeader};
use tierd_codecs::StoredEvent;
use tracing::error;

use crate::catalog::{Format, SegmentMeta};
use crate::error::{Result, StoreError};
use crate::layout::Layout;

/// Opens a segment's stored object for reading its committed bytes `[0, meta.bytes)`.
pub fn open_segment(layout: &Layout, meta: &SegmentMeta) -> Result<File> {
    let location = meta.hot_path().ok_or_else(|| StoreError::Corrupt {
        id: meta.id,
        message: format!("no hot copy (the segment is {})", meta.placement()),
    })?;
    let path = layout
        .resolve(location)
        .ok_or_else(|| StoreError::Corrupt { id: meta.id, message: format!("bad location {location:?}") })?;
    match File::open(&path) {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            metrics::counter!("tierd_segments_missing_total").increment(1);
            error!(segment = %meta.id, path = %path.display(), "segment missing on disk");
            Err(StoreError::SegmentMissing { id: meta.id, path, rows: meta.rows })
        }
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Reads `len` bytes at `offset` of an open segment file; a short file is corruption, not end of data.
pub fn read_at(meta: &SegmentMeta, file: &File, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            StoreError::Corrupt {
                id: meta.id,
                message: format!("file is shorter than its committed length {}", meta.bytes),
            }
        } else {
            StoreError::io(meta.hot_path().unwrap_or_default(), e)
        }
    })?;
    Ok(buf)
}

/// Reads and verifies the committed bytes of a segment's hot copy ([`SegmentSource::read_committed`] reads either
/// tier).
pub fn read_committed(layout: &Layout, meta: &SegmentMeta) -> Result<Vec<u8>> {
    let file = open_segment(layout, meta)?;
    let buf = read_at(meta, &file, 0, meta.bytes as usize)?;
    let computed = crc32c::crc32c(&buf);
    if computed != meta.checksum {
        metrics::counter!("tierd_read_checksum_errors_total").increment(1);
        error!(segment = %meta.id, stored = meta.checksum, computed, "segment checksum mismatch");
        return Err(StoreError::Corrupt {
            id: meta.id,
            message: format!("checksum mismatch: catalog {:#010x}, data {computed:#010x}", meta.checksum),
        });
    }
    metrics::counter!("tierd_read_bytes_total", "tier" => "hot").increment(buf.len() as u64);
    Ok(buf)
}

/// Calls `f` for each event of a segment's verified bytes that is in the request's window (and of its event name,
/// when given). Row segments skip whole frames outside the window without decompressing them; Parquet segments read
/// only the needed columns and row groups (`tierd_codecs::columnar::scan`). With `req.properties = Some(keys)`,
/// Parquet events carry only those properties (row events carry all).
pub fn scan(meta: &SegmentMeta, bytes: Bytes, req: &ScanRequest, mut f: impl FnMut(StoredEvent)) -> Result<()> {
    let corrupt = |message: String| StoreError::Corrupt { id: meta.id, message };
    match meta.format {
        Format::Rows => {
            let (_, header_len) = SegmentHeader::decode(&bytes).map_err(|e| corrupt(e.to_string()))?;
            rows::for_each_event(
                &bytes[header_len..],
                header_len as u64,
                |min, max| min < req.to_ms && max >= req.from_ms,
                |e| {
                    let ev = &e.event;
                    if ev.time_ms >= req.from_ms
                        && ev.time_ms < req.to_ms
                        && req.event.as_ref().is_none_or(|n| *n == ev.event)
                    {
                        f(e)
                    }
                },
            )
            .map_err(|e| corrupt(e.to_string()))
        }
        Format::Parquet => columnar::scan(bytes, req, f).map(|_| ()).map_err(|e| corrupt(e.to_string())),
    }
}

/// Per event name, how many of a segment's stored events (from its verified bytes) [`scan`] would deliver for `req`:
/// names in byte order, counts above zero, `req.properties` ignored.
///
/// These are counts of stored copies, not deduplicated: they are deduplicated counts only for a segment that holds
/// at most one copy of each event, which the caller must know. A Parquet segment is counted from its `time` and
/// `event` columns alone (`tierd_codecs::columnar::count_by_event`), without building any event; a row segment
/// (which may hold copies, and has no columns to skip) is scanned and its events counted.
pub fn count_by_event(meta: &SegmentMeta, bytes: Bytes, req: &ScanRequest) -> Result<Vec<(String, u64)>> {
    match meta.format {
        Format::Rows => {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            scan(meta, bytes, req, |e| *counts.entry(e.event.event).or_default() += 1)?;
            Ok(counts.into_iter().collect())
        }
        Format::Parquet => columnar::count_by_event(bytes, req)
            .map(|(counts, _)| counts)
            .map_err(|e| StoreError::Corrupt { id: meta.id, message: e.to_string() }),
    }
}

/// Per group key, how many of a segment's stored events (from its verified bytes) in `req`'s window and of its event
/// name meet every condition of `req` (see `tierd_codecs::columnar::count_groups`, whose `progress` this takes):
/// stored copies, not deduplicated, like [`count_by_event`]. A Parquet segment is counted from the columns the
/// conditions and the key read, without building any event; a row segment is scanned and its events counted.
pub fn count_groups(
    meta: &SegmentMeta,
    bytes: Bytes,
    req: &GroupCountRequest,
    mut progress: impl FnMut(GroupProgress) -> bool,
) -> Result<Vec<(Value, u64)>> {
    match meta.format {
        Format::Rows => {
            let mut counts: HashMap<String, (Value, u64)> = HashMap::new();
            let scan_req = ScanRequest { properties: None, ..req.scan.clone() };
            scan(meta, bytes, &scan_req, |e| {
                if req.filters.iter().all(|f| f.matches(&e.event)) {
                    let key = req.group_by.key(&e.event);
                    counts.entry(key.to_string()).or_insert((key, 0)).1 += 1;
                }
            })?;
            let bytes = counts.keys().map(|k| k.len() as u64).sum();
            progress(GroupProgress { groups: counts.len(), key_bytes: bytes });
            Ok(counts.into_values().collect())
        }
        Format::Parquet => columnar::count_groups(bytes, req, progress)
            .map(|(counts, _)| counts)
            .map_err(|e| StoreError::Corrupt { id: meta.id, message: e.to_string() }),
    }
}

/// A scan request for every event of a segment with all its properties.
pub fn everything() -> ScanRequest {
    ScanRequest { from_ms: i64::MIN, to_ms: i64::MAX, event: None, properties: None }
}

/// Every event of a segment's hot copy (all properties), in stored order: [`SegmentSource::read_events`] over hot
/// copies only.
pub fn read_events(layout: &Layout, meta: &SegmentMeta) -> Result<Vec<StoredEvent>> {
    SegmentSource::hot_only(layout.clone()).read_events(meta)
}
