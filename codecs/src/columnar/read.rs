//! Reading columnar segments: the footer ([`read_meta`]), whole segments ([`decode`]), and turning record batches
//! back into events (shared with [`super::scan()`]).

use std::collections::BTreeSet;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayAccessor, RecordBatch, StringArray, TimestampMillisecondArray, TypedDictionaryArray, UInt64Array,
};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::statistics::Statistics;
use serde_json::{Map, Value};

use super::layout::{
    Layout, DISTINCT_ID_COLUMN, EVENT_COLUMN, FORMAT_VERSION, INSERT_ID_COLUMN, PROPS_COLUMN, SEQ_COLUMN, TIME_COLUMN,
    TIME_INDEX,
};
use super::shred::PropertyReader;
use super::spec::{Compression, DEFAULT_ZSTD_LEVEL};
use super::{ColumnarError, ColumnarMeta, SegmentInfo};
use crate::event::{Event, StoredEvent, TimeRange};

/// Rows per record batch, reading and writing: big enough to amortise per-batch work, small enough that a batch of
/// ~500-byte events stays a few MiB.
pub(crate) const BATCH_ROWS: usize = 8192;

/// Loads the footer (and, if `options` ask for it, the page index) and the tierd layout it describes.
pub(crate) fn open<R: ChunkReader>(
    reader: &R,
    options: ArrowReaderOptions,
) -> Result<(ArrowReaderMetadata, Layout), ColumnarError> {
    let metadata = ArrowReaderMetadata::load(reader, options).map_err(|source| ColumnarError::NotParquet { source })?;
    let layout = Layout::from_footer(metadata.metadata().file_metadata().key_value_metadata(), metadata.schema())?;
    Ok((metadata, layout))
}

/// The record batches `builder` reads, [`BATCH_ROWS`] rows at a time, with Parquet and Arrow errors told as the
/// read of `segment_id` ("read setup" when the reader cannot be built, "read" for a batch). Every reader of a
/// segment ([`decode`], [`super::scan()`], [`super::count_by_event`], [`super::recompress`]) reads through here.
pub(crate) fn batches<'a, R: ChunkReader + 'static>(
    builder: ParquetRecordBatchReaderBuilder<R>,
    segment_id: &'a str,
) -> Result<impl Iterator<Item = Result<RecordBatch, ColumnarError>> + 'a, ColumnarError> {
    let reader =
        builder.with_batch_size(BATCH_ROWS).build().map_err(ColumnarError::parquet(segment_id, "read setup"))?;
    Ok(reader.map(move |batch| batch.map_err(ColumnarError::arrow(segment_id, "read"))))
}

/// Decodes a whole columnar segment: its info and every event, in the segment's sort order.
///
/// Fails with [`ColumnarError::NotParquet`] / [`ColumnarError::NotColumnar`] /
/// [`ColumnarError::UnsupportedVersion`] on bytes that are not a columnar segment this build reads, and with
/// [`ColumnarError::Corrupt`] or [`ColumnarError::Parquet`] on damaged ones. (The bytes are copied once: the Parquet
/// reader needs to own its input.)
pub fn decode(bytes: &[u8]) -> Result<(SegmentInfo, Vec<StoredEvent>), ColumnarError> {
    let bytes = Bytes::copy_from_slice(bytes);
    let (metadata, layout) = open(&bytes, ArrowReaderOptions::new())?;
    let segment_id = layout.info.segment_id.as_str();
    let rows = usize::try_from(metadata.metadata().file_metadata().num_rows()).unwrap_or(0);
    let mut events = Vec::with_capacity(rows);
    for batch in batches(ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, metadata), segment_id)? {
        let batch = batch?;
        let rows = BatchRows::new(&batch, &layout, None)?;
        for row in 0..batch.num_rows() {
            events.push(rows.event(row)?);
        }
    }
    Ok((layout.info, events))
}

/// Reads what the footer says about a columnar segment, without decoding any data page.
///
/// Fails like [`decode`] on bytes that are not a columnar segment; a row group without time statistics is
/// [`ColumnarError::Corrupt`] (tierd always writes them), as are column chunks with a codec tierd does not write
/// or with different codecs.
pub fn read_meta(bytes: &[u8]) -> Result<ColumnarMeta, ColumnarError> {
    read_meta_from(&SliceReader(bytes))
}

/// [`read_meta`] through any [`ChunkReader`] that serves the file's footer (a file on disk: only the footer is
/// read).
pub fn read_meta_from<R: ChunkReader>(reader: &R) -> Result<ColumnarMeta, ColumnarError> {
    let metadata =
        ParquetMetaDataReader::new().parse_and_finish(reader).map_err(|source| ColumnarError::NotParquet { source })?;
    let file = metadata.file_metadata();
    let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
        .map_err(|source| ColumnarError::NotParquet { source })?;
    let layout = Layout::from_footer(file.key_value_metadata(), &schema)?;
    let segment_id = layout.info.segment_id.as_str();
    let corrupt = |message: String| ColumnarError::Corrupt { segment_id: segment_id.to_owned(), message };

    let mut time = None;
    for (i, group) in metadata.row_groups().iter().enumerate() {
        let (min, max) = match group.column(TIME_INDEX).statistics() {
            Some(Statistics::Int64(stats)) => (stats.min_opt().copied(), stats.max_opt().copied()),
            _ => (None, None),
        };
        let (Some(min), Some(max)) = (min, max) else {
            return Err(corrupt(format!("row group {i} has no time statistics")));
        };
        time = TimeRange::union(time, Some(TimeRange { min_ms: min, max_ms: max }));
    }

    let mut spec = layout.spec.clone();
    spec.compression = compression_found(&metadata, spec.compression).map_err(corrupt)?;
    Ok(ColumnarMeta {
        info: layout.info.clone(),
        format_version: FORMAT_VERSION,
        rows: u64::try_from(file.num_rows())
            .map_err(|_| corrupt(format!("row count {} is negative", file.num_rows())))?,
        time,
        spec,
        sort: layout.sort,
        row_groups: metadata.num_row_groups(),
        columns: layout.columns,
        props_keys: layout.props_keys.into_iter().collect(),
        lineage: layout.lineage,
    })
}

/// The codec every column chunk uses; `recorded` when there is no column chunk (an empty segment) and for the zstd
/// level, which Parquet does not record.
fn compression_found(metadata: &ParquetMetaData, recorded: Compression) -> Result<Compression, String> {
    use parquet::basic::Compression as Codec;
    let mut found: Option<Codec> = None;
    for chunk in metadata.row_groups().iter().flat_map(|g| g.columns()) {
        let codec = chunk.compression();
        match found {
            None => found = Some(codec),
            Some(first) if std::mem::discriminant(&first) != std::mem::discriminant(&codec) => {
                return Err(format!("column chunks use different codecs ({first} and {codec})"));
            }
            Some(_) => {}
        }
    }
    match found {
        None => Ok(recorded),
        Some(Codec::UNCOMPRESSED) => Ok(Compression::None),
        Some(Codec::LZ4_RAW) => Ok(Compression::Lz4),
        Some(Codec::ZSTD(_)) => match recorded {
            Compression::Zstd(level) => Ok(Compression::Zstd(level)),
            _ => Ok(Compression::Zstd(DEFAULT_ZSTD_LEVEL)),
        },
        Some(other) => Err(format!("column chunks use codec {other}, which tierd does not write")),
    }
}

/// The rows of one record batch as events. With `wanted = Some(keys)` only those properties are assembled (the
/// batch may then lack the other property columns, and `_props` when no wanted key can be in it).
pub(crate) struct BatchRows<'a> {
    segment_id: &'a str,
    pub(crate) time: &'a TimestampMillisecondArray,
    pub(crate) event: TypedDictionaryArray<'a, Int32Type, StringArray>,
    distinct_id: &'a StringArray,
    insert_id: &'a StringArray,
    seq: &'a UInt64Array,
    properties: Vec<(&'a str, PropertyReader<'a>)>,
    remainder: Option<&'a StringArray>,
    wanted: Option<&'a BTreeSet<String>>,
}

impl<'a> BatchRows<'a> {
    pub(crate) fn new(
        batch: &'a RecordBatch,
        layout: &'a Layout,
        wanted: Option<&'a BTreeSet<String>>,
    ) -> Result<Self, ColumnarError> {
        let segment_id = layout.info.segment_id.as_str();
        let wrong_type = |name: &str| ColumnarError::Corrupt {
            segment_id: segment_id.to_owned(),
            message: format!("column {name:?} does not have the type its footer describes"),
        };
        let column = |name: &str| batch.column_by_name(name).ok_or_else(|| wrong_type(name));
        let strings = |name: &str| column(name)?.as_string_opt::<i32>().ok_or_else(|| wrong_type(name));
        let event = column(EVENT_COLUMN)?
            .as_dictionary_opt::<Int32Type>()
            .and_then(|d| d.downcast_dict::<StringArray>())
            .ok_or_else(|| wrong_type(EVENT_COLUMN))?;
        let mut properties = Vec::new();
        for shredded in &layout.columns {
            // A projected-out column is simply absent from the batch.
            if let Some(array) = batch.column_by_name(&shredded.column) {
                let reader = PropertyReader::new(shredded.kind, array).ok_or_else(|| wrong_type(&shredded.column))?;
                properties.push((shredded.key.as_str(), reader));
            }
        }
        Ok(Self {
            segment_id,
            time: column(TIME_COLUMN)?.as_primitive_opt().ok_or_else(|| wrong_type(TIME_COLUMN))?,
            event,
            distinct_id: strings(DISTINCT_ID_COLUMN)?,
            insert_id: strings(INSERT_ID_COLUMN)?,
            seq: column(SEQ_COLUMN)?.as_primitive_opt().ok_or_else(|| wrong_type(SEQ_COLUMN))?,
            properties,
            remainder: batch
                .column_by_name(PROPS_COLUMN)
                .map(|c| c.as_string_opt::<i32>().ok_or_else(|| wrong_type(PROPS_COLUMN)))
                .transpose()?,
            wanted,
        })
    }

    /// The event at `row`, with the wanted properties.
    pub(crate) fn event(&self, row: usize) -> Result<StoredEvent, ColumnarError> {
        let seq = self.seq.value(row);
        let corrupt = |message: String| ColumnarError::Corrupt {
            segment_id: self.segment_id.to_owned(),
            message: format!("row with seq {seq}: {message}"),
        };
        let wanted = |key: &str| self.wanted.is_none_or(|keys| keys.contains(key));
        let mut properties = Map::new();
        for (key, reader) in &self.properties {
            if let Some(value) = reader.value(row).map_err(corrupt)? {
                if wanted(key) {
                    properties.insert((*key).to_owned(), value);
                }
            }
        }
        if let Some(remainder) = self.remainder.filter(|r| r.is_valid(row)) {
            let rest: Map<String, Value> = serde_json::from_str(remainder.value(row))
                .map_err(|e| corrupt(format!("_props is not a JSON object: {e}")))?;
            for (key, value) in rest {
                if wanted(&key) {
                    if let Some(_shadowed) = properties.insert(key, value) {
                        return Err(corrupt("a property is both in its column and in _props".to_owned()));
                    }
                }
            }
        }
        let event = Event {
            event: self.event.value(row).to_owned(),
            time_ms: self.time.value(row),
            distinct_id: self.distinct_id.value(row).to_owned(),
            insert_id: self.insert_id.value(row).to_owned(),
            properties,
        };
        Ok(StoredEvent { seq, event })
    }
}

/// A borrowed byte slice as a Parquet [`ChunkReader`], so [`read_meta`] parses the footer without copying the
/// whole file (only the footer's bytes are copied).
struct SliceReader<'a>(&'a [u8]);

impl Length for SliceReader<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

impl<'a> ChunkReader for SliceReader<'a> {
    type T = &'a [u8];

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let start = usize::try_from(start).ok().filter(|s| *s <= self.0.len());
        start.map(|s| &self.0[s..]).ok_or_else(|| eof(self.0.len()))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let range = usize::try_from(start).ok().and_then(|s| Some(s..s.checked_add(length)?));
        let slice = range.and_then(|r| self.0.get(r)).ok_or_else(|| eof(self.0.len()))?;
        Ok(Bytes::copy_from_slice(slice))
    }
}

fn eof(len: usize) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::EOF(format!("read past the end of a {len}-byte file"))
}
