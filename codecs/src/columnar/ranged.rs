//! Reading a columnar segment from a few byte ranges of it instead of the whole file, for a reader that pays per
//! byte fetched (the cold tier's object store).
//!
//! Planning is pure and happens in three steps, each needing only bytes the previous one located:
//!
//! 1. the last [`FOOTER_TAIL_LEN`] bytes give the footer's length: [`footer_range`];
//! 2. the footer gives where the page index lies (just before the footer): [`page_index_range`];
//! 3. footer and page index ([`ColumnarFooter::load`]) give the byte ranges a request reads:
//!    [`ColumnarFooter::scan_ranges`] / [`ColumnarFooter::count_ranges`]: the column chunks of the projected columns
//!    in the row groups the statistics and page index do not rule out, pruned exactly as [`super::scan()`] and
//!    [`super::count_by_event`] prune (one [`Selection`], one projection).
//!
//! The caller fetches those ranges and runs [`ColumnarFooter::scan`] / [`ColumnarFooter::count_by_event`] over any
//! [`ChunkReader`] that serves them: the reads are confined to the planned ranges, so a reader holding only them
//! suffices (a read elsewhere is the reader's error to raise, never a silent zero).

use std::ops::Range;

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::{ColumnChunkMask, FooterTail, PageIndexPolicy, ParquetMetaDataReader};
pub use parquet::file::reader::{ChunkReader, Length};

use super::layout::{Layout, EVENT_INDEX, TIME_INDEX};
use super::read::{batches, open};
use super::select::{scan_roots, ScanRequest, Selection};
use super::ColumnarError;

/// Bytes at the very end of every Parquet file: the footer's length (u32 little endian) and the magic `PAR1`.
pub const FOOTER_TAIL_LEN: u64 = 8;

/// The byte range of the footer (the Thrift file metadata and the [`FOOTER_TAIL_LEN`]-byte tail) of a file of
/// `file_len` bytes whose last [`FOOTER_TAIL_LEN`] bytes are `tail`.
pub fn footer_range(file_len: u64, tail: &[u8]) -> Result<Range<u64>, ColumnarError> {
    let not_parquet = |source| ColumnarError::NotParquet { source };
    let tail: &[u8; FOOTER_TAIL_LEN as usize] = tail.try_into().map_err(|_| {
        not_parquet(parquet::errors::ParquetError::General(format!(
            "a footer tail is {FOOTER_TAIL_LEN} bytes, got {}",
            tail.len()
        )))
    })?;
    let footer = FooterTail::try_new(tail).map_err(not_parquet)?;
    let len = footer.metadata_length() as u64 + FOOTER_TAIL_LEN;
    if len > file_len {
        return Err(not_parquet(parquet::errors::ParquetError::General(format!(
            "the footer says it is {len} bytes, the file has {file_len}"
        ))));
    }
    Ok(file_len - len..file_len)
}

/// The byte range of the page index that [`ColumnarFooter::load`] reads (the column index of `time` and `event`,
/// the offset index of every column), from `footer`: the bytes of [`footer_range`]. `None` when the file has no
/// page index.
pub fn page_index_range(footer: &[u8]) -> Result<Option<Range<u64>>, ColumnarError> {
    let not_parquet = |source| ColumnarError::NotParquet { source };
    let metadata_len = footer.len().checked_sub(FOOTER_TAIL_LEN as usize).ok_or_else(|| {
        not_parquet(parquet::errors::ParquetError::General(format!("a footer of {} bytes", footer.len())))
    })?;
    let metadata = ParquetMetaDataReader::decode_metadata(&footer[..metadata_len]).map_err(not_parquet)?;
    let mut range: Option<Range<u64>> = None;
    for group in metadata.row_groups() {
        for (i, column) in group.columns().iter().enumerate() {
            let column_index = column.column_index_range().filter(|_| i == TIME_INDEX || i == EVENT_INDEX);
            for index in column_index.into_iter().chain(column.offset_index_range()) {
                range = Some(match range {
                    Some(r) => r.start.min(index.start)..r.end.max(index.end),
                    None => index,
                });
            }
        }
    }
    Ok(range)
}

/// A columnar segment's footer and page index, parsed: what a scan needs before reading any data page.
pub struct ColumnarFooter {
    pub(super) metadata: ArrowReaderMetadata,
    pub(super) layout: Layout,
}

impl std::fmt::Debug for ColumnarFooter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnarFooter")
            .field("segment_id", &self.layout.info.segment_id)
            .field("row_groups", &self.metadata.metadata().num_row_groups())
            .finish_non_exhaustive()
    }
}

impl ColumnarFooter {
    /// Loads the footer and the page index from `reader`, which must serve at least the ranges of [`footer_range`]
    /// and [`page_index_range`]. Page statistics (column index) are loaded only for `time` and `event`, the columns
    /// scans prune pages by; page locations (offset index) for every column, to skip pages. Fails like
    /// [`super::decode`] on bytes that are not a columnar segment.
    pub fn load<R: ChunkReader>(reader: &R) -> Result<Self, ColumnarError> {
        let options = ArrowReaderOptions::new()
            .with_page_index_policy(PageIndexPolicy::Optional)
            .with_column_index_mask(ColumnChunkMask::columns([TIME_INDEX, EVENT_INDEX]));
        let (metadata, layout) = open(reader, options)?;
        Ok(Self { metadata, layout })
    }

    /// An estimate of the bytes this footer holds in memory (the parquet crate's estimate of its metadata, page
    /// index included), for caches that bound what they keep.
    pub fn memory_size(&self) -> usize {
        self.metadata.metadata().memory_size() + std::mem::size_of::<Self>()
    }

    /// The byte ranges [`ColumnarFooter::scan`] reads for `req`, sorted and merged where they touch.
    pub fn scan_ranges(&self, req: &ScanRequest) -> Vec<Range<u64>> {
        self.chunk_ranges(req, &scan_roots(&self.layout, req))
    }

    /// The byte ranges [`ColumnarFooter::count_by_event`] reads for `req`, sorted and merged where they touch.
    pub fn count_ranges(&self, req: &ScanRequest) -> Vec<Range<u64>> {
        self.chunk_ranges(req, &[TIME_INDEX, EVENT_INDEX])
    }

    /// The projection of `roots` over the file's schema.
    fn projection(&self, roots: &[usize]) -> ProjectionMask {
        ProjectionMask::roots(self.metadata.metadata().file_metadata().schema_descr(), roots.iter().copied())
    }

    /// The record batches of `selection` in `reader`, holding only the columns under `roots`: what
    /// [`ColumnarFooter::scan`] and [`ColumnarFooter::count_by_event`] read, inside the ranges
    /// [`ColumnarFooter::scan_ranges`] / [`ColumnarFooter::count_ranges`] plan for the same selection and roots.
    pub(super) fn read_selected<R: ChunkReader + 'static>(
        &self,
        reader: R,
        selection: Selection,
        roots: &[usize],
    ) -> Result<impl Iterator<Item = Result<RecordBatch, ColumnarError>> + '_, ColumnarError> {
        self.read_selected_with(self.metadata.clone(), reader, selection, roots)
    }

    /// [`ColumnarFooter::read_selected`] with `metadata`: this footer's, possibly with another Arrow schema for the
    /// same Parquet columns (string columns read as dictionaries).
    pub(super) fn read_selected_with<R: ChunkReader + 'static>(
        &self,
        metadata: ArrowReaderMetadata,
        reader: R,
        selection: Selection,
        roots: &[usize],
    ) -> Result<impl Iterator<Item = Result<RecordBatch, ColumnarError>> + '_, ColumnarError> {
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(reader, metadata)
            .with_projection(self.projection(roots))
            .with_row_groups(selection.groups)
            .with_row_selection(selection.rows);
        batches(builder, &self.layout.info.segment_id)
    }

    /// The column chunks of the columns under `roots` in the row groups `req` selects. The Parquet reader reads a
    /// column chunk's pages (and its dictionary page) inside the chunk's byte range and nothing else.
    pub(super) fn chunk_ranges(&self, req: &ScanRequest, roots: &[usize]) -> Vec<Range<u64>> {
        let parquet = self.metadata.metadata();
        let selection = Selection::new(parquet, req);
        let projection = self.projection(roots);
        let mut ranges: Vec<Range<u64>> = Vec::new();
        for &group in &selection.groups {
            for (leaf, column) in parquet.row_group(group).columns().iter().enumerate() {
                if projection.leaf_included(leaf) {
                    let (start, len) = column.byte_range();
                    ranges.push(start..start + len);
                }
            }
        }
        merge_ranges(ranges)
    }
}

/// Sorts ranges and merges those that overlap or touch; drops empty ones.
pub fn merge_ranges(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}
