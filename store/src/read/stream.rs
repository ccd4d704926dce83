//! Streaming reads of a whole segment, for rewrites that never hold one whole: a Parquet segment row group by row
//! group ([`ParquetEvents`]), a row segment frame by frame ([`RowFrames`]). Every byte handed out is verified
//! first: a Parquet row group's blocks against the catalog's block checksums before it is decoded; a row segment's
//! frames against their own checksums as they are read, and the whole copy's crc32c against the catalog's when the
//! last frame is reached (a rewrite commits nothing before that).

use std::fs::File;
use std::io::{BufReader, Read};

use bytes::Bytes;
use tierd_codecs::columnar::{ChunkReader, ColumnarInput, EventSource, Length, RowGroupBatches, RowGroupEvents};
use tierd_codecs::rows::{self, RawFrameReader, RawRow, SegmentHeader};
use tierd_codecs::StoredEvent;
use tracing::error;

use super::blocks::{Backing, BlockObject, Fill};
use super::cold::ColdReads;
use super::sparse::SparseObject;
use super::SegmentSource;
use crate::catalog::SegmentMeta;
use crate::error::{Result, StoreError};

/// Where a [`ParquetEvents`] reads its blocks.
enum Copy {
    Hot {
        file: File,
        path: String,
    },
    Cold {
        reads: ColdReads,
        key: String,
    },
    /// A copy without block checksums (written before they were recorded): read whole, verified, held.
    Whole(Bytes),
}

/// The bytes of one row group (verified blocks), or of the whole copy.
#[derive(Clone)]
pub(crate) enum GroupBytes {
    Blocks(SparseObject),
    Whole(Bytes),
}

impl Length for GroupBytes {
    fn len(&self) -> u64 {
        match self {
            GroupBytes::Blocks(o) => o.len(),
            GroupBytes::Whole(b) => b.len() as u64,
        }
    }
}

impl ChunkReader for GroupBytes {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> std::result::Result<Self::T, tierd_codecs::columnar::ParquetError> {
        Ok(match self {
            GroupBytes::Blocks(o) => Box::new(o.get_read(start)?),
            GroupBytes::Whole(b) => Box::new(b.get_read(start)?),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> std::result::Result<Bytes, tierd_codecs::columnar::ParquetError> {
        match self {
            GroupBytes::Blocks(o) => o.get_bytes(start, length),
            GroupBytes::Whole(b) => b.get_bytes(start, length),
        }
    }
}

/// A Parquet segment read one row group at a time: see the module documentation. Holds one row group's blocks
/// and one decoded batch.
pub struct ParquetEvents {
    meta: SegmentMeta,
    copy: Copy,
    input: ColumnarInput,
    next_group: usize,
    current: Option<RowGroupEvents>,
    batch_rows: usize,
}

impl SegmentSource {
    /// Opens a Parquet segment for reading row group by row group (its footer read and verified): the hot copy
    /// when there is one (falling back to the cold copy if the hot one is missing or fails its checksum here), else
    /// the cold one, through the budgeted store and without filling the cache. Events come out `batch_rows` at a
    /// time.
    pub fn parquet_events(&self, meta: &SegmentMeta, batch_rows: usize) -> Result<ParquetEvents> {
        let (copy, input) = if meta.blocks.is_none() {
            let bytes = self.read_committed(meta)?;
            let input = ColumnarInput::open(&bytes).map_err(|e| corrupt(meta, e))?;
            (Copy::Whole(bytes), input)
        } else {
            self.with_copy(
                meta,
                || {
                    let path = meta.hot_path().expect("called for a segment with a hot copy").to_owned();
                    let file = super::open_segment(self.layout(), meta)?;
                    let input = open_footer(meta, Backing::Hot { file: clone(&file, &path)?, path: &path })?;
                    Ok((Copy::Hot { file, path }, input))
                },
                |reads, key| {
                    let input = open_footer(meta, Backing::Cold { reads, key, fill: Fill::No })?;
                    Ok((Copy::Cold { reads: reads.clone(), key: key.to_owned() }, input))
                },
                || true,
            )?
        };
        Ok(ParquetEvents { meta: meta.clone(), copy, input, next_group: 0, current: None, batch_rows })
    }
}

fn clone(file: &File, path: &str) -> Result<File> {
    file.try_clone().map_err(|e| StoreError::io(path, e))
}

fn corrupt(meta: &SegmentMeta, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { id: meta.id, message: e.to_string() }
}

/// Reads and verifies the footer's blocks, then the footer.
fn open_footer(meta: &SegmentMeta, backing: Backing<'_>) -> Result<ColumnarInput> {
    let mut object = BlockObject::new(meta, backing)?.expect("the segment has block checksums");
    object.footer()?;
    ColumnarInput::open(&object.object).map_err(|e| object.corrupt(e))
}

impl ParquetEvents {
    pub fn meta(&self) -> &SegmentMeta {
        &self.meta
    }

    pub fn input(&self) -> &ColumnarInput {
        &self.input
    }

    /// What reading holds at once: the largest row group (whole copies: all of it).
    pub fn held_bytes(&self) -> u64 {
        match &self.copy {
            Copy::Whole(b) => b.len() as u64,
            _ => self.input.max_row_group_bytes() + 2 * self.meta.blocks.as_ref().map_or(0, |b| b.block_size),
        }
    }

    /// The verified bytes of row group `i`.
    fn group_bytes(&self, i: usize) -> Result<GroupBytes> {
        let range = self.input.row_group_range(i);
        let backing = match &self.copy {
            Copy::Whole(bytes) => return Ok(GroupBytes::Whole(bytes.clone())),
            Copy::Hot { file, path } => Backing::Hot { file: clone(file, path)?, path },
            Copy::Cold { reads, key } => Backing::Cold { reads, key, fill: Fill::No },
        };
        let mut object = BlockObject::new(&self.meta, backing)?.expect("the segment has block checksums");
        object.ensure(&[range])?;
        Ok(GroupBytes::Blocks(object.object))
    }

    /// The record batches of the next row group, as stored (a recompression); `None` after the last.
    pub fn next_group_batches(&mut self) -> Result<Option<RowGroupBatches>> {
        if self.next_group >= self.input.row_groups() {
            return Ok(None);
        }
        let i = self.next_group;
        self.next_group += 1;
        let bytes = self.group_bytes(i)?;
        self.input.row_group_batches(i, bytes, self.batch_rows).map(Some).map_err(|e| corrupt(&self.meta, e))
    }
}

impl EventSource<StoreError> for ParquetEvents {
    fn next_event(&mut self) -> Result<Option<StoredEvent>> {
        loop {
            if let Some(current) = &mut self.current {
                match current.next_event().map_err(|e| corrupt(&self.meta, e))? {
                    Some(event) => return Ok(Some(event)),
                    None => self.current = None,
                }
            }
            if self.next_group >= self.input.row_groups() {
                return Ok(None);
            }
            let i = self.next_group;
            self.next_group += 1;
            let bytes = self.group_bytes(i)?;
            self.current = Some(self.input.row_group(i, bytes, self.batch_rows).map_err(|e| corrupt(&self.meta, e))?);
        }
    }
}

/// A row segment's frames, read one at a time from the start of its committed bytes; see the module documentation.
pub struct RowFrames {
    meta: SegmentMeta,
    reader: Box<dyn Read + Send>,
    offset: u64,
    crc: u32,
    frame: Vec<u8>,
    raw: RawFrameReader,
}

impl SegmentSource {
    /// Opens a row segment for reading frame by frame: the hot copy (read as it goes), else the cold one (whole).
    /// The header is read and checked here.
    pub fn row_frames(&self, meta: &SegmentMeta) -> Result<RowFrames> {
        let reader: Box<dyn Read + Send> = match (meta.hot_path(), self.cold_reads()) {
            (Some(_), _) | (None, None) => {
                Box::new(BufReader::with_capacity(1 << 20, super::open_segment(self.layout(), meta)?.take(meta.bytes)))
            }
            (None, Some(_)) => Box::new(std::io::Cursor::new(self.read_committed(meta)?)),
        };
        let mut frames = RowFrames {
            meta: meta.clone(),
            reader,
            offset: 0,
            crc: 0,
            frame: Vec::new(),
            raw: RawFrameReader::default(),
        };
        let mut header = Vec::new();
        frames.read_into(&mut header, rows::HEADER_PREFIX_LEN)?;
        let len = rows::header_len(header[..].try_into().expect("the prefix was read"));
        if len as u64 > meta.bytes {
            return Err(corrupt(meta, format!("the header claims {len} bytes of a {}-byte segment", meta.bytes)));
        }
        frames.read_into(&mut header, len - rows::HEADER_PREFIX_LEN)?;
        SegmentHeader::decode(&header).map_err(|e| corrupt(meta, e))?;
        Ok(frames)
    }
}

impl RowFrames {
    pub fn meta(&self) -> &SegmentMeta {
        &self.meta
    }

    /// Appends the next `n` bytes to `buf`, counting them in the running checksum.
    fn read_into(&mut self, buf: &mut Vec<u8>, n: usize) -> Result<()> {
        let at = buf.len();
        buf.resize(at + n, 0);
        self.reader.read_exact(&mut buf[at..]).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                corrupt(&self.meta, format!("the file is shorter than its committed length {}", self.meta.bytes))
            } else {
                StoreError::io(self.meta.hot_path().unwrap_or_default(), e)
            }
        })?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[at..]);
        self.offset += n as u64;
        Ok(())
    }

    /// Calls `f` for each row of the next frame; `false` after the last one, once the whole copy's checksum was
    /// found equal to the catalog's.
    pub fn next_frame(&mut self, mut f: impl FnMut(RawRow<'_>) -> Result<()>) -> Result<bool> {
        if self.offset >= self.meta.bytes {
            if self.crc != self.meta.checksum {
                metrics::counter!("tierd_read_checksum_errors_total").increment(1);
                let (stored, computed) = (self.meta.checksum, self.crc);
                error!(segment = %self.meta.id, stored, computed, "segment checksum mismatch");
                return Err(corrupt(
                    &self.meta,
                    format!("checksum mismatch: catalog {:#010x}, data {:#010x}", self.meta.checksum, self.crc),
                ));
            }
            metrics::counter!("tierd_read_bytes_total", "tier" => "hot").increment(self.meta.bytes);
            return Ok(false);
        }
        let start = self.offset;
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        self.read_into(&mut frame, rows::FRAME_HEADER_LEN)?;
        let len = rows::frame_len(frame[..].try_into().expect("the frame header was read"));
        if start + len as u64 > self.meta.bytes {
            return Err(corrupt(&self.meta, format!("the frame at {start} runs past the committed length")));
        }
        self.read_into(&mut frame, len - rows::FRAME_HEADER_LEN)?;
        let mut failed = None;
        let decoded = self.raw.read(&frame, start, |row| {
            if failed.is_none() {
                failed = f(row).err();
            }
        });
        self.frame = frame;
        decoded.map_err(|e| corrupt(&self.meta, e))?;
        failed.map_or(Ok(true), Err)
    }
}
