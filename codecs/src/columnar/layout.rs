//! The physical layout of a columnar segment: its Arrow/Parquet schema, the tierd key-value metadata in the
//! footer, and the Parquet writer settings. Both the writer and every reader go through here, so what is written
//! and what is expected are defined in one place.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::basic::Encoding;
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::shred::ShreddedColumn;
use super::spec::{CodecSpec, Compression};
use super::{ColumnarError, Lineage, SegmentInfo, SortOrder};

/// Event time, ms since the epoch: `Timestamp(Millisecond, "UTC")`.
pub const TIME_COLUMN: &str = "time";
/// Event name: `Dictionary<Int32, Utf8>`.
pub const EVENT_COLUMN: &str = "event";
pub const DISTINCT_ID_COLUMN: &str = "distinct_id";
pub const INSERT_ID_COLUMN: &str = "$insert_id";
/// Ingest sequence (`StoredEvent::seq`): `UInt64`.
pub const SEQ_COLUMN: &str = "seq";
/// The JSON remainder: a JSON object of every property that has no column or does not fit its column; null when
/// there is none.
pub const PROPS_COLUMN: &str = "_props";

/// Most rows per data page (the writer checks it every 1024 rows, so pages of all columns start on the same
/// rows). Pages are what the page index prunes inside a row group: smaller pages decode fewer rows around a narrow
/// window but make the page index, which a scan reads first, bigger. Measured with the `columnar_bench` example
/// (400,000 events, (event, time) order, LZ4, 64K-row groups; see [`super::sort_permutation`]):
///
/// | rows per page | bytes/event | open | 1 h, one event | 1 h, all events |
/// |---|---|---|---|---|
/// | 20,000 (Parquet's default) | 60.1 | 0.13 ms | 1.72 ms, 37,092 rows | 13.5 ms, 319,957 rows |
/// | 8,192 | 60.1 | 0.14 ms | 1.21 ms, 21,390 rows | 10.4 ms, 258,005 rows |
/// | 4,096 | 60.3 | 0.16 ms | 1.01 ms, 11,548 rows | 9.5 ms, 200,971 rows |
/// | **2,048** | 60.7 | 0.20 ms | 0.87 ms, 6,684 rows | 7.4 ms, 133,568 rows |
/// | 1,024 | 60.2 | 0.27 ms | 0.92 ms, 4,096 rows | 6.8 ms, 81,685 rows |
///
/// 2048 is the fastest for one event's hour, for 1% more bytes than the default; below it the page index costs
/// more to read than the rows it saves.
pub const PAGE_ROWS: usize = 2048;

/// Most rows per data page, in a segment compressed with zstd, of every column but `time` and `event`, which keep
/// [`PAGE_ROWS`] (the page index prunes by those two only; the other columns are read for the rows they select,
/// whatever their pages). zstd compresses each page on its own, so pages of 2,048 rows leave most of the
/// redundancy between rows on the table. Measured on 1,000,000 generated events (one day, 118,937 events after
/// dedup; `cargo run -p tierd-codecs --release --example bytes_probe`, zstd-19), the GH Archive hour and the
/// Wikipedia edits, bytes/event:
///
/// | rows per page (columns but `time`, `event`) | generated day | GH Archive | Wikipedia |
/// |---|---|---|---|
/// | 2,048 (as lz4) | 39.17 | 36.92 | 52.02 |
/// | 16,384 | | | 51.41 |
/// | **65,536** | 37.91 | 37.01 | 51.40 |
///
/// (Keys shredded by the earlier rule, half the rows.) The generated day gains most in `_props` (7.10 -> 6.65) and
/// `$session_id`; GH Archive's dictionary-encoded columns lose a little: a page's dictionary indices take the bit
/// width of the whole dictionary, where the first small pages were written with a narrower one.
///
/// A row group holds at most [`crate::columnar::CodecSpec::row_group_rows`] rows (65,536 by default), so these
/// columns get one page per row group (or one per MiB, Parquet's page size bound). Queries that read them decode
/// whole pages of the row groups they keep; zstd segments are the older data, read less often.
pub const ZSTD_PAGE_ROWS: usize = 65_536;

/// The rows per page of the columns other than `time` and `event` for `compression`: [`ZSTD_PAGE_ROWS`] for zstd,
/// `None` (every column at [`PAGE_ROWS`]) for LZ4 and no compression, the hot tier's fast codecs.
fn zstd_page_rows(compression: Compression) -> Option<usize> {
    match compression {
        Compression::Zstd(_) => Some(ZSTD_PAGE_ROWS),
        Compression::None | Compression::Lz4 => None,
    }
}

/// The columnar format version this code writes, and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Footer key-value metadata keys. Values are text: `day` in decimal, the sort order as its `Display` form, the
/// codec spec, the shredded columns and the `_props` keys as JSON.
pub(crate) const KEY_VERSION: &str = "tierd.columnar.version";
pub(crate) const KEY_SEGMENT_ID: &str = "tierd.segment_id";
pub(crate) const KEY_PROJECT: &str = "tierd.project";
pub(crate) const KEY_DAY: &str = "tierd.day";
/// The [`CodecSpec`] the file was written with, as JSON.
pub(crate) const KEY_CODEC: &str = "tierd.codec";
/// The [`SortOrder`], as text.
pub(crate) const KEY_SORT: &str = "tierd.sort";
/// The shredded columns: a JSON array of `{"key", "column", "kind"}`, in schema order.
pub(crate) const KEY_COLUMNS: &str = "tierd.columns";
/// Every key that occurs in `_props` in some row: a sorted JSON array of strings.
pub(crate) const KEY_PROPS_KEYS: &str = "tierd.props_keys";
/// The keys of [`KEY_PROPS_KEYS`] that occur in `_props` with a value other than `null` in some row: a sorted JSON
/// array of strings. A reader to which a `null` and a missing value are alike (a group key, most conditions) need
/// not read `_props` for the other keys (a key without a column, or a shredded key, that spilled only as `null`).
/// Optional: files written before it was recorded have none, and every key of `_props` may then hold any value.
pub(crate) const KEY_PROPS_VALUED_KEYS: &str = "tierd.props_valued_keys";
/// The [`Lineage`] of a rewrite's output, as JSON; absent in files written before it was recorded.
pub(crate) const KEY_LINEAGE: &str = "tierd.lineage";

/// Index of each fixed column in the schema (and, the schema being flat, of its Parquet leaf column).
pub(crate) const TIME_INDEX: usize = 0;
pub(crate) const EVENT_INDEX: usize = 1;
pub(crate) const DISTINCT_ID_INDEX: usize = 2;
pub(crate) const INSERT_ID_INDEX: usize = 3;
pub(crate) const SEQ_INDEX: usize = 4;
/// The first shredded column; `_props` comes after the last one.
pub(crate) const FIRST_PROPERTY_INDEX: usize = 5;

/// Everything the footer says about a segment beyond what Parquet itself records.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    pub(crate) info: SegmentInfo,
    pub(crate) spec: CodecSpec,
    pub(crate) sort: SortOrder,
    /// In schema order (sorted by key).
    pub(crate) columns: Vec<ShreddedColumn>,
    pub(crate) props_keys: BTreeSet<String>,
    /// [`KEY_PROPS_VALUED_KEYS`]; `None` in files written before it was recorded.
    pub(crate) props_valued_keys: Option<BTreeSet<String>>,
    pub(crate) lineage: Option<Lineage>,
}

impl Layout {
    /// The Arrow schema of a segment with these shredded columns. It carries no metadata of its own: the footer
    /// key-value metadata is the one place tierd's metadata lives.
    pub(crate) fn schema(columns: &[ShreddedColumn]) -> SchemaRef {
        let mut fields = vec![
            Field::new(TIME_COLUMN, DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
            Field::new(EVENT_COLUMN, DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), false),
            Field::new(DISTINCT_ID_COLUMN, DataType::Utf8, false),
            Field::new(INSERT_ID_COLUMN, DataType::Utf8, false),
            Field::new(SEQ_COLUMN, DataType::UInt64, false),
        ];
        fields.extend(columns.iter().map(|c| Field::new(&c.column, c.kind.data_type(), true)));
        fields.push(Field::new(PROPS_COLUMN, DataType::Utf8, true));
        Arc::new(Schema::new(fields))
    }

    /// Index of `_props` in the schema.
    pub(crate) fn props_index(&self) -> usize {
        FIRST_PROPERTY_INDEX + self.columns.len()
    }

    /// The footer key-value metadata, except [`KEY_PROPS_KEYS`] and [`KEY_PROPS_VALUED_KEYS`] (see
    /// [`Layout::props_keys_key_values`]).
    fn key_values(&self) -> Vec<KeyValue> {
        let mut kvs = vec![
            KeyValue::new(KEY_VERSION.to_owned(), FORMAT_VERSION.to_string()),
            KeyValue::new(KEY_SEGMENT_ID.to_owned(), self.info.segment_id.clone()),
            KeyValue::new(KEY_PROJECT.to_owned(), self.info.project.clone()),
            KeyValue::new(KEY_DAY.to_owned(), self.info.day.to_string()),
            KeyValue::new(KEY_CODEC.to_owned(), to_json(&self.spec)),
            KeyValue::new(KEY_SORT.to_owned(), self.sort.to_string()),
            KeyValue::new(KEY_COLUMNS.to_owned(), to_json(&self.columns)),
        ];
        if let Some(lineage) = &self.lineage {
            kvs.push(KeyValue::new(KEY_LINEAGE.to_owned(), to_json(lineage)));
        }
        kvs
    }

    /// The [`KEY_PROPS_KEYS`] and [`KEY_PROPS_VALUED_KEYS`] footer entries (the second when known). The writer
    /// learns the sets only while it writes the rows, so they are appended to the footer just before the file is
    /// closed rather than given with the writer properties.
    pub(crate) fn props_keys_key_values(&self) -> Vec<KeyValue> {
        let mut kvs = vec![KeyValue::new(KEY_PROPS_KEYS.to_owned(), to_json(&self.props_keys))];
        if let Some(valued) = &self.props_valued_keys {
            kvs.push(KeyValue::new(KEY_PROPS_VALUED_KEYS.to_owned(), to_json(valued)));
        }
        kvs
    }

    /// Whether `_props` may hold a value of `key` other than `null` in some row.
    pub(crate) fn props_may_hold_value(&self, key: &str) -> bool {
        match &self.props_valued_keys {
            Some(valued) => valued.contains(key),
            None => self.props_keys.contains(key),
        }
    }

    /// Reads the layout from a file's key-value metadata and checks it against the file's Arrow schema.
    ///
    /// A file without [`KEY_VERSION`] is [`ColumnarError::NotColumnar`]; another version is
    /// [`ColumnarError::UnsupportedVersion`] (checked before anything else, as another version may lay the rest out
    /// differently); missing or malformed keys, or a schema that is not the one the keys describe, are
    /// [`ColumnarError::Corrupt`].
    pub(crate) fn from_footer(key_values: Option<&Vec<KeyValue>>, schema: &Schema) -> Result<Layout, ColumnarError> {
        let get = |key: &str| -> Option<&str> {
            key_values?.iter().find(|kv| kv.key == key).map(|kv| kv.value.as_deref().unwrap_or_default())
        };
        let Some(version) = get(KEY_VERSION) else {
            return Err(ColumnarError::NotColumnar {
                reason: format!("the Parquet footer has no {KEY_VERSION:?} key"),
            });
        };
        if version != FORMAT_VERSION.to_string() {
            return Err(ColumnarError::UnsupportedVersion { found: version.to_owned(), supported: FORMAT_VERSION });
        }
        let segment_id = get(KEY_SEGMENT_ID).unwrap_or("(unknown)").to_owned();
        let corrupt = |message: String| ColumnarError::Corrupt { segment_id: segment_id.clone(), message };
        let required = |key: &str| get(key).ok_or_else(|| corrupt(format!("footer key {key:?} is missing")));
        let parse_json = |key: &str| -> Result<serde_json::Value, ColumnarError> {
            serde_json::from_str(required(key)?).map_err(|e| corrupt(format!("footer key {key:?} is not JSON: {e}")))
        };
        fn typed<T: serde::de::DeserializeOwned>(
            key: &str,
            value: serde_json::Value,
            corrupt: impl Fn(String) -> ColumnarError,
        ) -> Result<T, ColumnarError> {
            serde_json::from_value(value).map_err(|e| corrupt(format!("footer key {key:?} is malformed: {e}")))
        }

        let info = SegmentInfo {
            segment_id: required(KEY_SEGMENT_ID)?.to_owned(),
            project: required(KEY_PROJECT)?.to_owned(),
            day: required(KEY_DAY)?.parse().map_err(|e| corrupt(format!("footer key {KEY_DAY:?}: {e}")))?,
        };
        let spec: CodecSpec = typed(KEY_CODEC, parse_json(KEY_CODEC)?, corrupt)?;
        let sort = required(KEY_SORT)?.parse().map_err(|e| corrupt(format!("footer key {KEY_SORT:?}: {e}")))?;
        let columns: Vec<ShreddedColumn> = typed(KEY_COLUMNS, parse_json(KEY_COLUMNS)?, corrupt)?;
        let props_keys: BTreeSet<String> = typed(KEY_PROPS_KEYS, parse_json(KEY_PROPS_KEYS)?, corrupt)?;
        // Optional: files written before lineage was recorded have none.
        let lineage: Option<Lineage> = match get(KEY_LINEAGE) {
            None => None,
            Some(_) => Some(typed(KEY_LINEAGE, parse_json(KEY_LINEAGE)?, corrupt)?),
        };
        let props_valued_keys: Option<BTreeSet<String>> = match get(KEY_PROPS_VALUED_KEYS) {
            None => None,
            Some(_) => Some(typed(KEY_PROPS_VALUED_KEYS, parse_json(KEY_PROPS_VALUED_KEYS)?, corrupt)?),
        };
        if let Some(stray) = props_valued_keys.iter().flatten().find(|k| !props_keys.contains(*k)) {
            return Err(corrupt(format!("footer key {KEY_PROPS_VALUED_KEYS:?} lists {stray:?}, not a key of _props")));
        }
        let layout = Layout { info, spec, sort, columns, props_keys, props_valued_keys, lineage };

        let expected = Layout::schema(&layout.columns);
        let names = |s: &Schema| s.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect();
        let (found, wanted): (Vec<String>, Vec<String>) = (names(schema), names(&expected));
        if found != wanted {
            return Err(corrupt(format!(
                "the file's columns are [{}], its footer describes [{}]",
                found.join(", "),
                wanted.join(", ")
            )));
        }
        Ok(layout)
    }

    /// The Parquet writer settings for this layout (with its `spec`), footer metadata included but for
    /// [`Layout::props_keys_key_values`].
    ///
    /// Statistics are written per page (`EnabledStatistics::Page`), so every column chunk has min/max statistics and
    /// a column index and offset index (the page index) for readers to prune row groups and pages with. Time and
    /// sequence are delta-encoded (time is sorted within each event, sequence follows time closely); `$insert_id`
    /// is random, so a dictionary for it would only be built to be thrown away. Pages hold [`PAGE_ROWS`] rows, but
    /// for zstd those of the columns other than `time` and `event` ([`ZSTD_PAGE_ROWS`]).
    pub(crate) fn writer_properties(&self) -> WriterProperties {
        let spec = &self.spec;
        let path = |name: &str| ColumnPath::new(vec![name.to_owned()]);
        let mut builder = WriterProperties::builder();
        if let Some(rows) = zstd_page_rows(spec.compression) {
            // Every column but the two that scans prune pages by.
            let others = [DISTINCT_ID_COLUMN, INSERT_ID_COLUMN, SEQ_COLUMN, PROPS_COLUMN]
                .into_iter()
                .chain(self.columns.iter().map(|c| c.column.as_str()));
            for name in others {
                builder = builder.set_column_data_page_row_count_limit(path(name), rows);
            }
        }
        builder
            .set_compression(spec.compression.to_parquet())
            .set_dictionary_enabled(spec.dictionary)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(spec.row_group_rows))
            .set_data_page_row_count_limit(PAGE_ROWS)
            .set_column_dictionary_enabled(path(TIME_COLUMN), false)
            .set_column_encoding(path(TIME_COLUMN), Encoding::DELTA_BINARY_PACKED)
            .set_column_dictionary_enabled(path(SEQ_COLUMN), false)
            .set_column_encoding(path(SEQ_COLUMN), Encoding::DELTA_BINARY_PACKED)
            .set_column_dictionary_enabled(path(INSERT_ID_COLUMN), false)
            .set_sorting_columns(Some(self.sort.sorting_columns()))
            .set_key_value_metadata(Some(self.key_values()))
            .build()
    }
}

impl SortOrder {
    /// The order as Parquet `sorting_columns` (the `seq` tie-break is left out: it only orders exact duplicates of
    /// the other keys).
    fn sorting_columns(self) -> Vec<SortingColumn> {
        let column = |index: usize| SortingColumn {
            column_idx: i32::try_from(index).expect("a fixed column index"),
            descending: false,
            nulls_first: false,
        };
        match self {
            SortOrder::Time => vec![column(TIME_INDEX)],
            SortOrder::EventTime => vec![column(EVENT_INDEX), column(TIME_INDEX)],
            SortOrder::EventUserTime => vec![column(EVENT_INDEX), column(DISTINCT_ID_INDEX), column(TIME_INDEX)],
        }
    }
}

/// The JSON text of footer metadata, which cannot fail to serialize (plain structs, strings and sets of strings).
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("footer metadata always serializes")
}
