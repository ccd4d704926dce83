//! The streaming writer: a columnar segment written to any [`Write`] row group by row group, never whole in memory.
//!
//! The caller fixes the shredded columns up front (from a [`super::ShredSurvey`]) and pushes events already in the
//! segment's sort order; the writer checks the order (a file never claims an order it does not have), cuts record
//! batches, hands them to the row group encoder ([`super::encoder`]: what Parquet's `ArrowWriter` does, on the
//! caller's thread or column by column on worker threads), which flushes each full row group to the writer, and
//! completes the footer (the `_props` keys met, the row count) at [`ColumnarWriter::finish`]. What it holds: one
//! record batch being built and the encoded pages of one row group (with workers, up to
//! [`super::encoder::PIPELINE_BATCHES`] more batches handed over). The output is byte for byte what
//! [`super::encode`] writes for the same events, columns and spec, whatever the number of threads: [`super::encode`]
//! is this writer over a `Vec<u8>`.

use std::collections::BTreeSet;
use std::io::Write;

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;

use super::batch::BatchBuilder;
use super::encoder::RowGroupEncoder;
use super::layout::Layout;
use super::shred::ShreddedColumn;
use super::spec::CodecSpec;
use super::text_row::{MergeEvent, StoredText};
use super::{ColumnarError, Lineage, SegmentInfo, SortOrder};
use crate::event::{StoredEvent, TimeRange};

/// The `_props` keys a segment's footer lists, carried into a segment its record batches are copied into.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PropsKeys {
    /// Every key `_props` may hold.
    pub all: BTreeSet<String>,
    /// Those it may hold with a value other than `null`; `None` where the source did not record them.
    pub valued: Option<BTreeSet<String>>,
}

/// What a finished segment holds, as the writer saw it go by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WrittenSummary {
    pub rows: u64,
    /// Lowest and highest `seq`; `None` without rows.
    pub seqs: Option<(u64, u64)>,
    pub time: Option<TimeRange>,
}

impl WrittenSummary {
    fn add(&mut self, seq: u64, time_ms: i64) {
        self.rows += 1;
        self.seqs = Some(self.seqs.map_or((seq, seq), |(lo, hi)| (lo.min(seq), hi.max(seq))));
        self.time = TimeRange::union(self.time, Some(TimeRange { min_ms: time_ms, max_ms: time_ms }));
    }
}

/// The sort key of the last row pushed, to check the next one against.
#[derive(Debug, Default)]
struct LastKey {
    set: bool,
    event: String,
    distinct_id: String,
    time_ms: i64,
    seq: u64,
}

/// Writes one columnar segment; see the module documentation.
pub struct ColumnarWriter<W: Write + Send> {
    layout: Layout,
    writer: RowGroupEncoder<W>,
    batch: BatchBuilder,
    summary: WrittenSummary,
    last: LastKey,
}

impl<W: Write + Send> ColumnarWriter<W> {
    /// Starts a segment `info` (recording `lineage`, when given) with these shredded `columns` (sorted by key, as
    /// [`super::ShredSurvey::plan`] gives them), written with `spec`, its rows in `sort` order. An invalid spec is
    /// [`ColumnarError::InvalidSpec`].
    pub fn new(
        out: W,
        info: &SegmentInfo,
        lineage: Option<&Lineage>,
        columns: Vec<ShreddedColumn>,
        spec: &CodecSpec,
        sort: SortOrder,
    ) -> Result<Self, ColumnarError> {
        Self::with_threads(out, info, lineage, columns, spec, sort, 1)
    }

    /// [`ColumnarWriter::new`], encoding column chunks on `threads` threads of its own (started here, so they
    /// take the calling thread's CPU priority); 1 (or 0) encodes on the caller's thread. The bytes written are
    /// the same for every number of threads.
    pub fn with_threads(
        out: W,
        info: &SegmentInfo,
        lineage: Option<&Lineage>,
        columns: Vec<ShreddedColumn>,
        spec: &CodecSpec,
        sort: SortOrder,
        threads: usize,
    ) -> Result<Self, ColumnarError> {
        spec.validate()?;
        let layout = Layout {
            info: info.clone(),
            spec: spec.clone(),
            sort,
            columns,
            props_keys: BTreeSet::new(),
            props_valued_keys: Some(BTreeSet::new()),
            lineage: lineage.cloned(),
        };
        let schema = Layout::schema(&layout.columns);
        let setup = ColumnarError::parquet(&info.segment_id, "writer setup");
        let writer = ArrowWriter::try_new(out, schema.clone(), Some(layout.writer_properties()))
            .and_then(ArrowWriter::into_serialized_writer)
            .and_then(|(file, factory)| {
                RowGroupEncoder::new(file, factory, schema.clone(), spec.row_group_rows, threads)
            })
            .map_err(setup)?;
        let batch = BatchBuilder::new(schema, &layout.columns);
        Ok(Self { layout, writer, batch, summary: WrittenSummary::default(), last: LastKey::default() })
    }

    /// The shredded columns the segment is written with.
    pub fn columns(&self) -> &[ShreddedColumn] {
        &self.layout.columns
    }

    /// The threads encoding column chunks (1: the caller's).
    pub fn threads(&self) -> usize {
        self.writer.threads()
    }

    /// What was pushed so far.
    pub fn summary(&self) -> WrittenSummary {
        self.summary
    }

    /// Bytes the writer holds for the row group in progress (encoded pages and the batch being built, about).
    pub fn buffered_bytes(&self) -> usize {
        self.writer.memory_size() + self.batch.text_bytes
    }

    /// Appends one event, which must not sort before the previous one (else [`ColumnarError::Corrupt`]: the
    /// caller's order is broken, and the file would claim an order it does not have).
    pub fn push(&mut self, stored: &StoredEvent) -> Result<(), ColumnarError> {
        let e = &stored.event;
        self.check_order(&e.event, &e.distinct_id, e.time_ms, stored.seq)?;
        self.batch.push(stored, &mut self.layout.props_keys, &mut self.layout.props_valued_keys);
        self.summary.add(stored.seq, stored.event.time_ms);
        if self.batch.is_full() {
            self.flush_batch()?;
        }
        Ok(())
    }

    /// [`ColumnarWriter::push`] of an event whose properties are still the JSON text they were stored as: the same
    /// row is written, without building the properties' map ([`super::text_row`]). Text that is not a JSON object
    /// is [`ColumnarError::Corrupt`] and nothing is appended.
    pub fn push_text(&mut self, row: &StoredText) -> Result<(), ColumnarError> {
        self.check_order(&row.event, row.distinct_id(), row.time_ms, row.seq)?;
        let (keys, valued) = (&mut self.layout.props_keys, &mut self.layout.props_valued_keys);
        self.batch
            .push_text(row, keys, valued)
            .map_err(|message| ColumnarError::Corrupt { segment_id: self.layout.info.segment_id.clone(), message })?;
        self.summary.add(row.seq, row.time_ms);
        if self.batch.is_full() {
            self.flush_batch()?;
        }
        Ok(())
    }

    /// Appends what a merge hands out, decoded or as text.
    pub fn push_merged(&mut self, event: &MergeEvent) -> Result<(), ColumnarError> {
        match event {
            MergeEvent::Decoded(e) => self.push(e),
            MergeEvent::Text(t) => self.push_text(t),
        }
    }

    /// Appends a record batch of this segment's schema as it is (a recompression: no event is rebuilt), with the
    /// `_props` keys it may hold (from its source's footer). The caller vouches for its order; only its rows are
    /// counted in the summary (no sequence or time range).
    pub fn write_batch(&mut self, batch: &RecordBatch, props_keys: &PropsKeys) -> Result<(), ColumnarError> {
        let id = &self.layout.info.segment_id;
        let batch = RecordBatch::try_new(self.batch_schema(), batch.columns().to_vec())
            .map_err(ColumnarError::arrow(id, "batch assembly"))?;
        self.writer.write(&batch).map_err(ColumnarError::parquet(id, "write"))?;
        self.layout.props_keys.extend(props_keys.all.iter().cloned());
        // A source that did not record its valued keys leaves the output's unknown too.
        match (&mut self.layout.props_valued_keys, &props_keys.valued) {
            (Some(valued), Some(more)) => valued.extend(more.iter().cloned()),
            (known, _) => *known = None,
        }
        self.summary.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn batch_schema(&self) -> arrow_schema::SchemaRef {
        Layout::schema(&self.layout.columns)
    }

    /// Writes the footer (with the `_props` keys met) and returns the writer and what was written.
    pub fn finish(mut self) -> Result<(W, WrittenSummary), ColumnarError> {
        if self.batch.rows > 0 {
            self.flush_batch()?;
        }
        for kv in self.layout.props_keys_key_values() {
            self.writer.append_key_value_metadata(kv);
        }
        let id = self.layout.info.segment_id.clone();
        let out = self.writer.into_inner().map_err(ColumnarError::parquet(&id, "close"))?;
        Ok((out, self.summary))
    }

    fn flush_batch(&mut self) -> Result<(), ColumnarError> {
        let id = &self.layout.info.segment_id;
        let full = self.batch.finish().map_err(ColumnarError::arrow(id, "batch assembly"))?;
        self.writer.write(&full).map_err(ColumnarError::parquet(id, "write"))
    }

    fn check_order(&mut self, event: &str, distinct_id: &str, time_ms: i64, seq: u64) -> Result<(), ColumnarError> {
        let last = &mut self.last;
        if last.set {
            let previous = (last.event.as_str(), last.distinct_id.as_str(), last.time_ms, last.seq);
            let ordered = match self.layout.sort {
                SortOrder::Time => (previous.2, previous.3) <= (time_ms, seq),
                SortOrder::EventTime => (previous.0, previous.2, previous.3) <= (event, time_ms, seq),
                SortOrder::EventUserTime => previous <= (event, distinct_id, time_ms, seq),
            };
            if !ordered {
                return Err(ColumnarError::Corrupt {
                    segment_id: self.layout.info.segment_id.clone(),
                    message: format!(
                        "rows pushed out of {} order: seq {} ({:?}, {}) after seq {} ({:?}, {})",
                        self.layout.sort, seq, event, time_ms, last.seq, last.event, last.time_ms
                    ),
                });
            }
        }
        if last.event != event {
            event.clone_into(&mut last.event);
        }
        if self.layout.sort == SortOrder::EventUserTime {
            distinct_id.clone_into(&mut last.distinct_id);
        }
        (last.set, last.time_ms, last.seq) = (true, time_ms, seq);
        Ok(())
    }
}
