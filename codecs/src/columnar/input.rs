//! Reading a columnar segment row group by row group, as a rewrite's input: the caller loads each row group's bytes
//! (verified, from whichever tier) and the events come out in the segment's order, a small batch at a time, so an
//! input costs one row group's compressed bytes and one decoded batch, whatever its size.

use std::collections::{BTreeSet, VecDeque};
use std::ops::Range;
use std::sync::Arc;

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader};
use parquet::file::reader::ChunkReader;

use super::layout::{Layout, FIRST_PROPERTY_INDEX};
use super::merge::EventSource;
use super::read::{open, BatchRows};
use super::shred::ShreddedColumn;
use super::survey::ShredSurvey;
use super::{ColumnarError, PropsKeys, SegmentInfo, SortOrder};
use crate::event::StoredEvent;

/// A columnar segment's footer, ready to read it row group by row group.
#[derive(Debug, Clone)]
pub struct ColumnarInput {
    metadata: ArrowReaderMetadata,
    layout: Arc<Layout>,
}

impl ColumnarInput {
    /// Reads the footer through `reader`, which must serve the file's last bytes and its footer (no page index is
    /// read). Fails like [`super::decode`] on bytes that are not a columnar segment this build reads.
    pub fn open<R: ChunkReader>(reader: &R) -> Result<Self, ColumnarError> {
        let (metadata, layout) = open(reader, ArrowReaderOptions::new())?;
        Ok(Self { metadata, layout: Arc::new(layout) })
    }

    pub fn info(&self) -> &SegmentInfo {
        &self.layout.info
    }

    pub fn sort(&self) -> SortOrder {
        self.layout.sort
    }

    pub fn rows(&self) -> u64 {
        u64::try_from(self.metadata.metadata().file_metadata().num_rows()).unwrap_or(0)
    }

    pub fn columns(&self) -> &[ShreddedColumn] {
        &self.layout.columns
    }

    pub fn props_keys(&self) -> &BTreeSet<String> {
        &self.layout.props_keys
    }

    pub fn row_groups(&self) -> usize {
        self.metadata.metadata().num_row_groups()
    }

    /// The bytes of row group `i`'s column chunks (dictionary and data pages): all a read of it touches.
    pub fn row_group_range(&self, i: usize) -> Range<u64> {
        let group = self.metadata.metadata().row_group(i);
        let ranges = group.columns().iter().map(|c| {
            let (start, len) = c.byte_range();
            start..start.saturating_add(len)
        });
        ranges.reduce(|a, b| a.start.min(b.start)..a.end.max(b.end)).unwrap_or(0..0)
    }

    /// The largest [`ColumnarInput::row_group_range`]: what reading this input holds at once, compressed.
    pub fn max_row_group_bytes(&self) -> u64 {
        (0..self.row_groups()).map(|i| self.row_group_range(i)).map(|r| r.end - r.start).max().unwrap_or(0)
    }

    /// The input's rows and the values of its shredded columns, from the column chunks' null counts (see
    /// [`ShredSurvey`] for what is not counted). A chunk without statistics counts no value.
    pub fn survey(&self) -> ShredSurvey {
        let mut survey = ShredSurvey::new();
        survey.add_rows(self.rows());
        for group in self.metadata.metadata().row_groups() {
            let rows = u64::try_from(group.num_rows()).unwrap_or(0);
            for (j, column) in self.layout.columns.iter().enumerate() {
                let nulls = group.column(FIRST_PROPERTY_INDEX + j).statistics().and_then(|s| s.null_count_opt());
                if let Some(nulls) = nulls {
                    survey.count(&column.key, column.kind, rows.saturating_sub(nulls));
                }
            }
        }
        survey
    }

    /// The record batches of row group `i` (`batch_rows` rows each), read through `reader`, which must serve
    /// [`ColumnarInput::row_group_range`]`(i)`.
    pub fn row_group_batches<R: ChunkReader + 'static>(
        &self,
        i: usize,
        reader: R,
        batch_rows: usize,
    ) -> Result<RowGroupBatches, ColumnarError> {
        let id = self.layout.info.segment_id.as_str();
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(reader, self.metadata.clone())
            .with_row_groups(vec![i])
            .with_batch_size(batch_rows.max(1))
            .build()
            .map_err(ColumnarError::parquet(id, "read setup"))?;
        Ok(RowGroupBatches { reader, layout: self.layout.clone() })
    }

    /// The events of row group `i`, decoded `batch_rows` at a time; see [`ColumnarInput::row_group_batches`].
    pub fn row_group<R: ChunkReader + 'static>(
        &self,
        i: usize,
        reader: R,
        batch_rows: usize,
    ) -> Result<RowGroupEvents, ColumnarError> {
        Ok(RowGroupEvents { batches: self.row_group_batches(i, reader, batch_rows)?, pending: VecDeque::new() })
    }
}

/// The record batches of one row group.
pub struct RowGroupBatches {
    reader: ParquetRecordBatchReader,
    layout: Arc<Layout>,
}

impl RowGroupBatches {
    /// The next batch; `None` at the end of the row group.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>, ColumnarError> {
        let id = self.layout.info.segment_id.as_str();
        self.reader.next().transpose().map_err(ColumnarError::arrow(id, "read"))
    }

    /// The `_props` keys the segment's footer lists (a superset of those in any of its batches).
    pub fn props_keys(&self) -> PropsKeys {
        PropsKeys { all: self.layout.props_keys.clone(), valued: self.layout.props_valued_keys.clone() }
    }
}

/// The events of one row group, in the segment's order.
pub struct RowGroupEvents {
    batches: RowGroupBatches,
    pending: VecDeque<StoredEvent>,
}

impl RowGroupEvents {
    /// The next event; `None` at the end of the row group.
    pub fn next_event(&mut self) -> Result<Option<StoredEvent>, ColumnarError> {
        while self.pending.is_empty() {
            let Some(batch) = self.batches.next_batch()? else { return Ok(None) };
            let rows = BatchRows::new(&batch, &self.batches.layout, None)?;
            for row in 0..batch.num_rows() {
                self.pending.push_back(rows.event(row)?);
            }
        }
        Ok(self.pending.pop_front())
    }
}

/// Every event of a columnar segment whose bytes `reader` serves whole (in memory, or a local file), row group by
/// row group: an [`EventSource`] in the segment's order.
pub struct SegmentEvents<R: ChunkReader + Clone + 'static> {
    input: ColumnarInput,
    reader: R,
    next_group: usize,
    current: Option<RowGroupEvents>,
    batch_rows: usize,
}

impl<R: ChunkReader + Clone + 'static> SegmentEvents<R> {
    pub fn new(reader: R, batch_rows: usize) -> Result<Self, ColumnarError> {
        let input = ColumnarInput::open(&reader)?;
        Ok(Self { input, reader, next_group: 0, current: None, batch_rows })
    }

    pub fn input(&self) -> &ColumnarInput {
        &self.input
    }
}

impl<R: ChunkReader + Clone + 'static> EventSource<ColumnarError> for SegmentEvents<R> {
    fn next_event(&mut self) -> Result<Option<StoredEvent>, ColumnarError> {
        loop {
            if let Some(current) = &mut self.current {
                if let Some(event) = current.next_event()? {
                    return Ok(Some(event));
                }
                self.current = None;
            }
            if self.next_group >= self.input.row_groups() {
                return Ok(None);
            }
            self.current = Some(self.input.row_group(self.next_group, self.reader.clone(), self.batch_rows)?);
            self.next_group += 1;
        }
    }
}
