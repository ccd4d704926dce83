//! The tier-aware read path: committed bytes of a segment, verified, and the events in them.
//!
//! A reader never trusts bytes past a segment's committed length (an open segment may have an unacknowledged tail
//! being written), and never returns bytes whose checksum does not match the catalog: a mismatch is an error that is
//! counted and logged. Later issues add the cold tier and its cache behind the same calls.

use std::fs::File;
use std::os::unix::fs::FileExt;

use tierd_codecs::rows::{self, SegmentHeader};
use tierd_codecs::StoredEvent;
use tracing::error;

use crate::catalog::{Format, SegmentMeta};
use crate::error::{Result, StoreError};
use crate::layout::Layout;

/// Opens a segment's stored object for reading its committed bytes `[0, meta.bytes)`.
pub fn open_segment(layout: &Layout, meta: &SegmentMeta) -> Result<File> {
    let path = layout
        .resolve(&meta.location)
        .ok_or_else(|| StoreError::Corrupt { id: meta.id, message: format!("bad location {:?}", meta.location) })?;
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
            StoreError::io(&meta.location, e)
        }
    })?;
    Ok(buf)
}

/// Reads and verifies a segment's committed bytes.
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

/// Calls `f` for each event of a segment's verified bytes, skipping whole frames for which
/// `keep_frame(min_time_ms, max_time_ms)` is false.
pub fn for_each_event(
    meta: &SegmentMeta,
    bytes: &[u8],
    keep_frame: impl FnMut(i64, i64) -> bool,
    f: impl FnMut(StoredEvent),
) -> Result<()> {
    match meta.format {
        Format::Rows => {
            let (_, header_len) = SegmentHeader::decode(bytes)
                .map_err(|e| StoreError::Corrupt { id: meta.id, message: e.to_string() })?;
            rows::for_each_event(&bytes[header_len..], header_len as u64, keep_frame, f)
                .map_err(|e| StoreError::Corrupt { id: meta.id, message: e.to_string() })
        }
    }
}

/// Every event of a segment, in stored order.
pub fn read_events(layout: &Layout, meta: &SegmentMeta) -> Result<Vec<StoredEvent>> {
    let bytes = read_committed(layout, meta)?;
    let mut out = Vec::with_capacity(meta.rows as usize);
    for_each_event(meta, &bytes, |_, _| true, |e| out.push(e))?;
    Ok(out)
}
