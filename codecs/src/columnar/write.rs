//! Writing columnar segments: sort, shred into Arrow record batches, encode as Parquet; and recompressing a segment
//! into another spec without going back to events.

use arrow_array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;

use super::layout::Layout;
use super::read::{batches, open};
use super::shred;
use super::spec::CodecSpec;
use super::stream::ColumnarWriter;
use super::{ColumnarError, Lineage, SegmentInfo, SortOrder};
use crate::event::StoredEvent;

/// The order in which [`encode`] writes `events`: indices into `events`, sorted by `order` (stable, so events
/// equal in every key including `seq` keep their input order).
///
/// # Why (event, time) ([`SortOrder::DEFAULT`])
///
/// Measured with `cargo run -p tierd-codecs --release --example columnar_bench -- --runs 7` on 400,000 generated
/// Mixpanel events of one day (532 bytes each as `/import` JSON; 40 event names and 50,000 users, both Zipf-like;
/// users with stable device and location properties), 64K-row groups, 2048-row pages. Scans count the events of
/// a window from a segment in memory, requesting no properties; "rows" is the number of rows decoded after row
/// group and page pruning (exact), times are medians per query on a shared 2-vCPU VM (±20% from run to run):
///
/// | order | bytes/event lz4 / zstd-3 | 1 h, one event | whole day, one event | 1 h, all events |
/// |---|---|---|---|---|
/// | time | 58.7 / 36.9 | 1.36 ms, 18,629 rows | 17.2 ms, 400,000 rows | 2.1 ms, 18,629 rows |
/// | **(event, time)** | 60.7 / 38.1 | 0.89 ms, 6,684 rows | 2.8 ms, 31,403 rows | 7.3 ms, 133,568 rows |
/// | (event, distinct_id, time) | 58.7 / 36.9 | 1.43 ms, 30,891 rows | 2.5 ms, 31,403 rows | 14.7 ms, 398,464 rows |
///
/// - tierd's queries name their events (counts, funnels and retention are all per event), and for those
///   (event, time) decodes the fewest rows: an event's rows are contiguous, so row group and page statistics on
///   `event` skip every other event, and its rows are time-sorted, so page statistics on `time` skip the rest of
///   the day. Time order decodes every event of the window (2.8x the rows for one hour, 13x for one day);
///   (event, distinct_id, time) keeps the event pruning but scatters each event's times, so no time pruning is
///   left inside an event (4.6x the rows for one hour).
/// - The price is 3% more bytes than the other two orders (2 bytes/event): sequence, time and session ids
///   correlate with time and lose some of their delta/dictionary compactness, partly won back on `event` and
///   `_props`. Most bytes are in columns no order helps (`$insert_id`, random: 34 of 61 bytes with lz4).
/// - Windows over all events are where time order wins (a seventh of the rows, 3.4x faster, for one hour); those
///   are rare in Mixpanel-style analytics (live views, exports), and they still get page pruning inside every
///   event's run.
pub fn sort_permutation(events: &[StoredEvent], order: SortOrder) -> Vec<usize> {
    let mut permutation: Vec<usize> = (0..events.len()).collect();
    let (e, s) = (|i: usize| &events[i].event, |i: usize| events[i].seq);
    match order {
        SortOrder::Time => permutation.sort_by(|&a, &b| e(a).time_ms.cmp(&e(b).time_ms).then(s(a).cmp(&s(b)))),
        SortOrder::EventTime => permutation.sort_by(|&a, &b| {
            (e(a).event.as_str(), e(a).time_ms, s(a)).cmp(&(e(b).event.as_str(), e(b).time_ms, s(b)))
        }),
        SortOrder::EventUserTime => permutation.sort_by(|&a, &b| {
            (e(a).event.as_str(), e(a).distinct_id.as_str(), e(a).time_ms, s(a)).cmp(&(
                e(b).event.as_str(),
                e(b).distinct_id.as_str(),
                e(b).time_ms,
                s(b),
            ))
        }),
    }
    permutation
}

/// Encodes `events` (all of `info`'s project and day; not checked) as a columnar segment written with `spec`,
/// sorted by [`SortOrder::DEFAULT`].
///
/// An empty `events` is allowed: it gives a valid Parquet file with the full schema, the footer metadata and no
/// row group (readers see zero rows; [`super::read_meta`] reports no time range). An invalid `spec` is
/// [`ColumnarError::InvalidSpec`]; nothing else fails short of a bug in the Parquet writer.
pub fn encode(info: &SegmentInfo, events: &[StoredEvent], spec: &CodecSpec) -> Result<Vec<u8>, ColumnarError> {
    encode_with_order(info, events, spec, SortOrder::DEFAULT)
}

/// [`encode`], recording `lineage` in the footer (`tierd.lineage`): what a rewrite's output replaced, its role, so
/// that the catalog can be rebuilt from the files ([`super::ColumnarMeta::lineage`] reads it back).
pub fn encode_with_lineage(
    info: &SegmentInfo,
    lineage: &Lineage,
    events: &[StoredEvent],
    spec: &CodecSpec,
) -> Result<Vec<u8>, ColumnarError> {
    encode_layout(info, Some(lineage.clone()), events, spec, SortOrder::DEFAULT)
}

/// [`encode`] with another sort order: for measurements (the `columnar_bench` example) and for tests. Readers do
/// not depend on the order; it is recorded in the footer and in Parquet's `sorting_columns`.
pub fn encode_with_order(
    info: &SegmentInfo,
    events: &[StoredEvent],
    spec: &CodecSpec,
    order: SortOrder,
) -> Result<Vec<u8>, ColumnarError> {
    encode_layout(info, None, events, spec, order)
}

fn encode_layout(
    info: &SegmentInfo,
    lineage: Option<Lineage>,
    events: &[StoredEvent],
    spec: &CodecSpec,
    order: SortOrder,
) -> Result<Vec<u8>, ColumnarError> {
    spec.validate()?;
    let columns = shred::plan(events, spec.max_property_columns);
    let mut writer = ColumnarWriter::new(Vec::new(), info, lineage.as_ref(), columns, spec, order)?;
    for i in sort_permutation(events, order) {
        writer.push(&events[i])?;
    }
    writer.finish().map(|(bytes, _)| bytes)
}

/// Rewrites a columnar segment with another `spec` (compression, row group size, dictionaries), streaming its
/// Arrow record batches straight into the new file: no event is rebuilt and no JSON is parsed.
///
/// The result has the same rows in the same order, the same columns and the same footer metadata except the
/// recorded spec (the footer is rebuilt from the tierd keys; keys other tools may have added are not carried).
/// Fails like [`super::decode`] on bytes that are not a readable columnar segment, and with
/// [`ColumnarError::InvalidSpec`] on an invalid `spec`.
pub fn recompress(bytes: &[u8], spec: &CodecSpec) -> Result<Vec<u8>, ColumnarError> {
    recompress_with(bytes, spec, None)
}

/// [`recompress`] into a new segment: the footer names `info` (the output's id; the project and day must be the
/// input's, not checked) and records `lineage`, instead of repeating the input's.
pub fn recompress_as(
    bytes: &[u8],
    info: &SegmentInfo,
    lineage: &Lineage,
    spec: &CodecSpec,
) -> Result<Vec<u8>, ColumnarError> {
    recompress_with(bytes, spec, Some((info.clone(), lineage.clone())))
}

fn recompress_with(
    bytes: &[u8],
    spec: &CodecSpec,
    renamed: Option<(SegmentInfo, Lineage)>,
) -> Result<Vec<u8>, ColumnarError> {
    spec.validate()?;
    let bytes = Bytes::copy_from_slice(bytes);
    let (metadata, mut layout) = open(&bytes, ArrowReaderOptions::new())?;
    layout.spec = spec.clone();
    if let Some((info, lineage)) = renamed {
        layout.info = info;
        layout.lineage = Some(lineage);
    }
    let segment_id = layout.info.segment_id.clone();
    let reader = batches(ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, metadata), &segment_id)?;
    // The reader's schema carries the old footer as schema metadata; write with the bare schema, as `encode` does.
    let schema = Layout::schema(&layout.columns);
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(layout.writer_properties()))
        .map_err(ColumnarError::parquet(&segment_id, "writer setup"))?;
    for batch in reader {
        let batch = RecordBatch::try_new(schema.clone(), batch?.columns().to_vec())
            .map_err(ColumnarError::arrow(&segment_id, "batch assembly"))?;
        writer.write(&batch).map_err(ColumnarError::parquet(&segment_id, "write"))?;
    }
    for kv in layout.props_keys_key_values() {
        writer.append_key_value_metadata(kv);
    }
    writer.into_inner().map_err(ColumnarError::parquet(&segment_id, "close"))
}
