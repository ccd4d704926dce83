//! The hot row format.
//!
//! A hot segment file is a [`SegmentHeader`] followed by frames. Each frame is one part of one acknowledged batch
//! (the events of that batch that fall into this segment's project and day):
//!
//! ```text
//! frame := len:u32le  crc:u32le  base_seq:u64le  count:u32le  min_time_ms:i64le  max_time_ms:i64le  body
//!          len = byte length of everything after `crc`; crc = crc32c of everything after `crc`
//! body  := lz4_flex block (size-prepended) of `count` rows
//! row   := time_ms:i64le  event:str  distinct_id:str  insert_id:str  properties_json:str   (str := len:u32le bytes)
//! ```
//! Row `i` of a frame has ingest sequence `base_seq + i`. The frame body is built by the ingest handler
//! ([`FrameBody::encode`], CPU work done in parallel by request handlers) and the sequence is stamped by the single
//! writer ([`FrameBody::write_frame`]), so the writer only copies bytes.
//!
//! A torn tail (a frame cut short or with a bad checksum) is found by [`valid_prefix`]; it was never acknowledged
//! because acknowledgement follows fsync.

use serde_json::{Map, Value};

use crate::event::{Event, EventRow, StoredEvent, TimeRange};

pub const FILE_MAGIC: &[u8; 8] = b"TIERDRW1";

/// The row segment version this code writes, and the only one it reads.
pub const FORMAT_VERSION: u16 = 1;

/// `magic:8 version:u16le header_len:u32le`, before the header JSON.
const HEADER_FIXED_LEN: usize = 8 + 2 + 4;
/// `len:u32le crc:u32le`, before the checksummed part of a frame.
const FRAME_PREFIX_LEN: usize = 4 + 4;
/// `base_seq:u64le count:u32le min_time_ms:i64le max_time_ms:i64le`, the checksummed frame header.
const FRAME_META_LEN: usize = 8 + 4 + 8 + 8;
/// The smallest row: `time_ms` and four empty strings.
const MIN_ROW_LEN: usize = 8 + 4 * 4;
/// An lz4 block cannot expand by more than 255x (one extra length byte adds at most 255 bytes of output), so a
/// body that claims more is corrupt; checking this first keeps a damaged size field from allocating gigabytes.
const MAX_LZ4_EXPANSION: usize = 255;
const MAX_LZ4_SLACK: usize = 64;

/// Errors decoding row segments. Offsets are byte offsets in the segment file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RowsError {
    #[error("not a tierd row segment (bad magic)")]
    BadMagic,
    #[error("unsupported row segment version {0}")]
    UnsupportedVersion(u16),
    #[error("segment header is corrupt: {0}")]
    BadHeader(String),
    #[error("frame at offset {offset} is truncated")]
    Truncated { offset: u64 },
    #[error("frame at offset {offset} has a bad checksum (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum { offset: u64, stored: u32, computed: u32 },
    #[error("frame at offset {offset} is corrupt: {message}")]
    Corrupt { offset: u64, message: String },
}

/// The self-describing header at the start of every row segment file:
/// `magic:8  version:u16le  header_len:u32le  json  crc:u32le` (json = this struct; crc over everything before it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SegmentHeader {
    pub segment_id: String,
    pub project: String,
    /// UTC day of event time, days since 1970-01-01.
    pub day: i32,
}

impl SegmentHeader {
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("a SegmentHeader always serializes");
        let json_len = u32::try_from(json.len()).expect("a segment header is far below 4 GiB");
        let mut out = Vec::with_capacity(HEADER_FIXED_LEN + json.len() + 4);
        out.extend_from_slice(FILE_MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&json_len.to_le_bytes());
        out.extend_from_slice(&json);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes the header at the start of `bytes`, returning it and its encoded length.
    ///
    /// Bytes that do not start with [`FILE_MAGIC`] are [`RowsError::BadMagic`]; a version other than
    /// [`FORMAT_VERSION`] is [`RowsError::UnsupportedVersion`] (checked before anything else is read, as another
    /// version may lay the rest out differently); a header cut short, with a bad checksum or bad JSON is
    /// [`RowsError::BadHeader`].
    pub fn decode(bytes: &[u8]) -> Result<(SegmentHeader, usize), RowsError> {
        // A prefix of the magic (a file torn while its header was written) is a truncated header, not another format.
        let magic_len = bytes.len().min(FILE_MAGIC.len());
        if bytes[..magic_len] != FILE_MAGIC[..magic_len] {
            return Err(RowsError::BadMagic);
        }
        let truncated = || RowsError::BadHeader(format!("truncated: the file has only {} bytes", bytes.len()));
        if bytes.len() < HEADER_FIXED_LEN {
            return Err(truncated());
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != FORMAT_VERSION {
            return Err(RowsError::UnsupportedVersion(version));
        }
        let json_len = usize::try_from(u32_at(bytes, 10)).map_err(|_| truncated())?;
        let total = HEADER_FIXED_LEN.checked_add(json_len).and_then(|n| n.checked_add(4)).ok_or_else(truncated)?;
        if bytes.len() < total {
            return Err(truncated());
        }
        let stored = u32_at(bytes, total - 4);
        let computed = crc32c::crc32c(&bytes[..total - 4]);
        if stored != computed {
            return Err(RowsError::BadHeader(format!(
                "bad checksum (stored {stored:#010x}, computed {computed:#010x})"
            )));
        }
        let header = serde_json::from_slice(&bytes[HEADER_FIXED_LEN..total - 4])
            .map_err(|e| RowsError::BadHeader(format!("invalid header JSON: {e}")))?;
        Ok((header, total))
    }
}

/// A compressed frame body without its sequence number: built once per batch part by the ingest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameBody {
    pub count: u32,
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    /// lz4 (size-prepended) of the rows.
    pub compressed: Vec<u8>,
}

impl FrameBody {
    /// Encodes events (all of one project and day; not checked here) into a compressed body. `events` must not be empty.
    ///
    /// (An empty slice still gives a well-formed frame with no rows and `min_time_ms = max_time_ms = 0`, which
    /// readers accept; it is just useless.)
    pub fn encode(events: &[Event]) -> FrameBody {
        let mut rows = RowsWriter::with_capacity(events.len(), events.len() * 128);
        for event in events {
            rows.push(event.time_ms, &event.event, &event.distinct_id, &event.insert_id, |out| {
                serde_json::to_writer(out, &event.properties).expect("writing JSON into a Vec cannot fail");
            });
        }
        rows.finish()
    }

    /// Encodes rows of a [`RowBatch`](crate::RowBatch) (all of one project and day; not checked here), exactly as
    /// [`FrameBody::encode`] encodes the same events: the rows already hold the properties' JSON, so this only copies.
    pub fn encode_rows(rows: &[EventRow<'_>]) -> FrameBody {
        let len = rows.iter().map(|r| r.event().len() + r.distinct_id().len() + r.insert_id().len()).sum::<usize>()
            + rows.iter().map(|r| r.properties_json().len()).sum::<usize>()
            + rows.len() * MIN_ROW_LEN;
        let mut writer = RowsWriter::with_capacity(rows.len(), len);
        for row in rows {
            writer.push(row.time_ms(), row.event(), row.distinct_id(), row.insert_id(), |out| {
                out.extend_from_slice(row.properties_json().as_bytes());
            });
        }
        writer.finish()
    }

    /// Appends the complete frame (header with `base_seq`, checksum, body) to `out`.
    pub fn write_frame(&self, base_seq: u64, out: &mut Vec<u8>) {
        let mut meta = [0u8; FRAME_META_LEN];
        meta[0..8].copy_from_slice(&base_seq.to_le_bytes());
        meta[8..12].copy_from_slice(&self.count.to_le_bytes());
        meta[12..20].copy_from_slice(&self.min_time_ms.to_le_bytes());
        meta[20..28].copy_from_slice(&self.max_time_ms.to_le_bytes());
        let len = u32::try_from(FRAME_META_LEN + self.compressed.len()).expect("a frame is below 4 GiB");
        let crc = crc32c::crc32c_append(crc32c::crc32c(&meta), &self.compressed);
        out.reserve(self.frame_len());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&meta);
        out.extend_from_slice(&self.compressed);
    }

    /// Length in bytes of the complete frame `write_frame` appends.
    pub fn frame_len(&self) -> usize {
        FRAME_PREFIX_LEN + FRAME_META_LEN + self.compressed.len()
    }
}

/// Summary of the valid frames at the start of a frame region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValidPrefix {
    /// Bytes of complete, checksum-valid frames.
    pub len: u64,
    pub frames: u64,
    pub rows: u64,
    /// The rows' times; `None` when there are no rows.
    pub time: Option<TimeRange>,
    /// `None` when there are no rows.
    pub max_seq: Option<u64>,
}

/// Scans the frames in `frames` (the bytes after the header) and reports the longest prefix of complete, valid
/// frames. Everything after it is a torn tail.
///
/// A frame is valid when it is complete, its checksum matches and its body decodes (exactly as [`decode_frames`]
/// would decode it), so `decode_frames(&frames[..len])` succeeds. Never panics, whatever the bytes.
pub fn valid_prefix(frames: &[u8]) -> ValidPrefix {
    let mut summary = ValidPrefix::default();
    let mut decoder = FrameDecoder::default();
    let mut pos = 0;
    while pos < frames.len() {
        let Ok((frame, next)) = read_frame(frames, pos, 0) else {
            break;
        };
        if decoder.decode(&frame).is_err() {
            break;
        }
        summary.frames += 1;
        summary.rows += u64::from(frame.count);
        summary.time = TimeRange::union(summary.time, TimeRange::of(decoder.rows.iter().map(|s| s.event.time_ms)));
        summary.max_seq = decoder.rows.iter().map(|s| s.seq).chain(summary.max_seq).max();
        pos = next;
    }
    summary.len = pos as u64;
    summary
}

/// Decodes every frame in `frames` (the bytes after the header), failing on the first invalid one.
/// `base_offset` is the file offset of `frames[0]`, for error messages.
pub fn decode_frames(frames: &[u8], base_offset: u64) -> Result<Vec<StoredEvent>, RowsError> {
    let mut events = Vec::new();
    for_each_event(frames, base_offset, |_, _| true, |event| events.push(event))?;
    Ok(events)
}

/// Calls `f` for each decoded event of each frame in order, failing on the first invalid frame; lets readers
/// skip whole frames by time without decompressing them: `keep_frame(min_time_ms, max_time_ms)`.
///
/// Every frame's checksum is verified, skipped or not, so a damaged frame is reported rather than silently
/// skipped. `f` only sees events of frames that decoded completely.
pub fn for_each_event(
    frames: &[u8],
    base_offset: u64,
    mut keep_frame: impl FnMut(i64, i64) -> bool,
    mut f: impl FnMut(StoredEvent),
) -> Result<(), RowsError> {
    let mut decoder = FrameDecoder::default();
    let mut pos = 0;
    while pos < frames.len() {
        let (frame, next) = read_frame(frames, pos, base_offset)?;
        if keep_frame(frame.min_time_ms, frame.max_time_ms) {
            decoder.decode(&frame)?;
            decoder.rows.drain(..).for_each(&mut f);
        }
        pos = next;
    }
    Ok(())
}

/// The uncompressed rows of a frame being built.
struct RowsWriter {
    rows: Vec<u8>,
    count: u32,
    min_time_ms: i64,
    max_time_ms: i64,
}

impl RowsWriter {
    fn with_capacity(count: usize, bytes: usize) -> Self {
        let count = u32::try_from(count).expect("a frame holds at most u32::MAX rows");
        Self { rows: Vec::with_capacity(bytes), count, min_time_ms: i64::MAX, max_time_ms: i64::MIN }
    }

    /// Appends one row; `properties` writes the properties' JSON.
    fn push(
        &mut self,
        time_ms: i64,
        event: &str,
        distinct_id: &str,
        insert_id: &str,
        properties: impl FnOnce(&mut Vec<u8>),
    ) {
        let rows = &mut self.rows;
        self.min_time_ms = self.min_time_ms.min(time_ms);
        self.max_time_ms = self.max_time_ms.max(time_ms);
        rows.extend_from_slice(&time_ms.to_le_bytes());
        put_str(rows, event.as_bytes());
        put_str(rows, distinct_id.as_bytes());
        put_str(rows, insert_id.as_bytes());
        // Write straight into the row buffer and patch the length in afterwards.
        let len_at = rows.len();
        rows.extend_from_slice(&[0; 4]);
        properties(rows);
        let len = u32::try_from(rows.len() - len_at - 4).expect("a row's properties are below 4 GiB");
        rows[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    }

    fn finish(self) -> FrameBody {
        let Self { rows, count, mut min_time_ms, mut max_time_ms } = self;
        if count == 0 {
            (min_time_ms, max_time_ms) = (0, 0);
        }
        // The lz4 size prefix is a u32.
        assert!(u32::try_from(rows.len()).is_ok(), "a frame's rows must be below 4 GiB, got {} bytes", rows.len());
        FrameBody { count, min_time_ms, max_time_ms, compressed: lz4_flex::compress_prepend_size(&rows) }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    let len = u32::try_from(s.len()).expect("a row string is below 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s);
}

/// The little-endian u32 at `bytes[at..at + 4]`; the caller has checked the length.
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// A frame whose length and checksum have been verified; its body is not decoded yet.
struct FrameView<'a> {
    /// File offset of the frame, for errors.
    offset: u64,
    base_seq: u64,
    count: u32,
    min_time_ms: i64,
    max_time_ms: i64,
    compressed: &'a [u8],
}

/// Reads the frame at `frames[pos..]`, returning it and the position just after it.
fn read_frame(frames: &[u8], pos: usize, base_offset: u64) -> Result<(FrameView<'_>, usize), RowsError> {
    let offset = base_offset.saturating_add(pos as u64);
    let rest = &frames[pos..];
    if rest.len() < FRAME_PREFIX_LEN {
        return Err(RowsError::Truncated { offset });
    }
    let len = u32_at(rest, 0) as usize;
    let stored = u32_at(rest, 4);
    // `len` came from a u32, so this cannot overflow a 64-bit usize; on 32 bits `get` fails as a truncation.
    let Some(checked) = FRAME_PREFIX_LEN.checked_add(len).and_then(|end| rest.get(FRAME_PREFIX_LEN..end)) else {
        return Err(RowsError::Truncated { offset });
    };
    let computed = crc32c::crc32c(checked);
    if stored != computed {
        return Err(RowsError::Checksum { offset, stored, computed });
    }
    if checked.len() < FRAME_META_LEN {
        let message = format!("frame length {len} is shorter than the {FRAME_META_LEN}-byte frame header");
        return Err(RowsError::Corrupt { offset, message });
    }
    let (meta, compressed) = checked.split_at(FRAME_META_LEN);
    let frame = FrameView {
        offset,
        base_seq: u64::from_le_bytes(meta[0..8].try_into().expect("8 bytes")),
        count: u32_at(meta, 8),
        min_time_ms: i64::from_le_bytes(meta[12..20].try_into().expect("8 bytes")),
        max_time_ms: i64::from_le_bytes(meta[20..28].try_into().expect("8 bytes")),
        compressed,
    };
    if frame.count > 0 && frame.base_seq.checked_add(u64::from(frame.count) - 1).is_none() {
        let message = format!("sequence {} + {} rows overflows", frame.base_seq, frame.count);
        return Err(RowsError::Corrupt { offset, message });
    }
    Ok((frame, pos + FRAME_PREFIX_LEN + len))
}

/// Decodes frame bodies, reusing its buffers from frame to frame.
#[derive(Default)]
struct FrameDecoder {
    /// The decompressed rows of the current frame.
    scratch: Vec<u8>,
    /// The decoded events of the current frame; complete only when `decode` succeeded.
    rows: Vec<StoredEvent>,
}

impl FrameDecoder {
    fn decode(&mut self, frame: &FrameView<'_>) -> Result<(), RowsError> {
        let corrupt = |message: String| RowsError::Corrupt { offset: frame.offset, message };
        self.rows.clear();
        decompress(frame, &mut self.scratch)?;
        let size = self.scratch.len();
        let mut reader = RowReader { rest: &self.scratch };
        let count = frame.count as usize;
        self.rows.reserve(count.min(size / MIN_ROW_LEN));
        for i in 0..count {
            let event = reader.row().map_err(|problem| corrupt(format!("row {i}: {problem}")))?;
            if event.time_ms < frame.min_time_ms || event.time_ms > frame.max_time_ms {
                return Err(corrupt(format!(
                    "row {i}: time {} is outside the frame's range {}..={}",
                    event.time_ms, frame.min_time_ms, frame.max_time_ms
                )));
            }
            // `read_frame` checked that base_seq + count - 1 does not overflow.
            self.rows.push(StoredEvent { seq: frame.base_seq + i as u64, event });
        }
        if !reader.rest.is_empty() {
            return Err(corrupt(format!("{} bytes after the last of {count} rows", reader.rest.len())));
        }
        Ok(())
    }
}

/// Decompresses `frame`'s body into `scratch` (cleared first), refusing a body whose size prefix is implausible.
fn decompress(frame: &FrameView<'_>, scratch: &mut Vec<u8>) -> Result<(), RowsError> {
    let corrupt = |message: String| RowsError::Corrupt { offset: frame.offset, message };
    let (size, block) = lz4_flex::block::uncompressed_size(frame.compressed)
        .map_err(|_| corrupt("body is shorter than its 4-byte size prefix".to_owned()))?;
    if size > block.len().saturating_mul(MAX_LZ4_EXPANSION).saturating_add(MAX_LZ4_SLACK) {
        return Err(corrupt(format!("body claims {size} uncompressed bytes from {} compressed bytes", block.len())));
    }
    scratch.clear();
    scratch.resize(size, 0);
    let written = lz4_flex::block::decompress_into(block, scratch)
        .map_err(|e| corrupt(format!("body does not decompress: {e}")))?;
    if written != size {
        return Err(corrupt(format!("body decompresses to {written} bytes, its size prefix says {size}")));
    }
    Ok(())
}

/// Reads rows from decompressed frame bytes.
struct RowReader<'a> {
    rest: &'a [u8],
}

impl<'a> RowReader<'a> {
    fn row(&mut self) -> Result<Event, String> {
        let time_ms = i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        let event = self.string("event")?;
        let distinct_id = self.string("distinct_id")?;
        let insert_id = self.string("insert_id")?;
        let properties: Map<String, Value> =
            serde_json::from_slice(self.str_bytes()?).map_err(|e| format!("properties are not a JSON object: {e}"))?;
        Ok(Event { event, time_ms, distinct_id, insert_id, properties })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err(format!("cut short: needs {n} more bytes, {} left", self.rest.len()));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn str_bytes(&mut self) -> Result<&'a [u8], String> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
        self.take(len as usize)
    }

    fn string(&mut self, field: &str) -> Result<String, String> {
        let bytes = self.str_bytes()?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|e| format!("{field} is not UTF-8: {e}"))
    }
}

mod raw;
#[cfg(test)]
mod tests;

pub use raw::{frame_len, header_len, RawFrameReader, RawRow, FRAME_HEADER_LEN, HEADER_PREFIX_LEN};
