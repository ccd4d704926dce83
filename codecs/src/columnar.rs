//! The columnar segment format: plain Parquet that tierd scans quickly and any Parquet reader (DuckDB, pyarrow,
//! Spark) reads unchanged.
//!
//! Sealed hot row segments are re-encoded into columnar segments. The invariant this module keeps: **decoding a
//! columnar segment gives back exactly the events that were encoded** (same fields, same sequence numbers, every
//! property with the same JSON value and type; only the order of events and of property keys may differ).
//!
//! Layout of one file (see [`layout`] for the constants):
//!
//! | column | Arrow type | holds |
//! |---|---|---|
//! | `time` | `Timestamp(Millisecond, "UTC")` | event time |
//! | `event` | `Dictionary<Int32, Utf8>` | event name |
//! | `distinct_id`, `$insert_id` | `Utf8` | as in [`Event`](crate::Event) |
//! | `seq` | `UInt64` | ingest sequence |
//! | `p.<key>` ... | `Utf8`, `Int64`, `Float64`, `Boolean`, or `Utf8` holding JSON | shredded properties ([`shred`]) |
//! | `_props` | `Utf8`, nullable | JSON object of every other property, null when there is none |
//!
//! A property value lives in exactly one place: its `p.<key>` column when the key is shredded and the value fits
//! the column's type without changing its JSON type, otherwise `_props` (explicit `null`, `u64` above `i64::MAX`,
//! an integer where the column is `Float64`, ...). An absent key is null in its column and absent from `_props`, so
//! absent and `null` stay distinct.
//!
//! The footer's key-value metadata holds the format version, the segment's id, project and day, the codec spec and
//! sort order it was written with, the shredded column map and the set of keys that occur in `_props` (so a scan
//! that needs only shredded keys that never spill does not read `_props` at all). Statistics and the page index are
//! written for every column, so readers prune row groups and pages by time, event and shredded properties.
//! [`count_by_event`] (a count per event name over a window) prunes like [`scan()`] and decodes only `time` and
//! `event`. Both also run over any Parquet [`ChunkReader`] that serves the byte ranges [`ColumnarFooter`] plans
//! (`ranged`), so a reader that pays per byte (the cold tier) fetches only the footer, the page index and the
//! column chunks a request needs.
//!
//! Events are sorted by [`SortOrder::DEFAULT`], chosen by measurement (see [`sort_permutation`]).

use std::fmt;
use std::str::FromStr;

use crate::event::TimeRange;

pub use parquet::errors::ParquetError;

mod aggregate;
mod batch;
mod count;
mod encoder;
mod input;
pub mod layout;
mod merge;
mod ranged;
mod read;
mod scan;
mod select;
pub mod shred;
mod sort_buffer;
mod spec;
mod stream;
mod survey;
mod text_row;
mod write;

pub use aggregate::{count_groups, GroupCountRequest, GroupProgress};
pub use count::count_by_event;
pub use encoder::PIPELINE_BATCHES;
pub use input::{ColumnarInput, RowGroupBatches, RowGroupEvents, SegmentEvents};
pub use merge::{merge, EventSource, MergeError, MergeItem, MergeStats};
pub use ranged::{footer_range, merge_ranges, page_index_range, ChunkReader, ColumnarFooter, Length, FOOTER_TAIL_LEN};
pub use read::{decode, read_meta, read_meta_from};
pub use scan::scan;
pub use select::{ScanRequest, ScanStats};
pub use shred::{property_column_name, ColumnKind, ShreddedColumn, PROPERTY_COLUMN_PREFIX};
pub use sort_buffer::{SortBuffer, SortedRun};
pub use spec::{
    CodecSpec, CodecSpecError, Compression, DEFAULT_MAX_PROPERTY_COLUMNS, DEFAULT_ZSTD_LEVEL, MAX_ROW_GROUP_ROWS,
    ZSTD_LEVELS,
};
pub use stream::{ColumnarWriter, PropsKeys, WrittenSummary};
pub use survey::ShredSurvey;
pub use text_row::{MergeEvent, StoredText};
pub use write::{encode, encode_with_lineage, encode_with_order, recompress, recompress_as, sort_permutation};

/// Which segment a columnar file holds; recorded in its footer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SegmentInfo {
    pub segment_id: String,
    pub project: String,
    /// UTC day of event time, days since 1970-01-01.
    pub day: i32,
}

impl From<crate::rows::SegmentHeader> for SegmentInfo {
    fn from(header: crate::rows::SegmentHeader) -> Self {
        let crate::rows::SegmentHeader { segment_id, project, day } = header;
        Self { segment_id, project, day }
    }
}

/// Where a columnar segment came from, recorded in its footer (`tierd.lineage`) by every rewrite since issue 12, so
/// that the catalog can be rebuilt from the files alone: which segments the rewrite replaced (`inputs`), what the
/// segment is for (`role`), whether its inputs may hold rows a user deletion removed (`erase_inputs`), and when its
/// oldest input was created (`created_at_ms`). Files written before it have no such key ([`ColumnarMeta::lineage`]
/// is `None`): a rebuild then knows nothing of what they replaced.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Lineage {
    /// Segment ids (ULID text) of the segments the rewrite that wrote this file retired in the same commit.
    pub inputs: Vec<String>,
    #[serde(default)]
    pub role: LineageRole,
    /// The inputs were retired by a user deletion's rewrite: their copies are to be erased, not kept in the trash.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erase_inputs: bool,
    /// The catalog's `created_at_ms` of the segment (the earliest of its inputs').
    pub created_at_ms: i64,
}

/// What a segment holds (the catalog's `role`, in the footer's words).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LineageRole {
    /// Events queries read.
    #[default]
    Data,
    /// Copies the dedup of the rewrite producing segment `of` removed, kept until `keep_until_ms`.
    Duplicates { of: String, keep_until_ms: i64 },
}

/// The order of events inside a columnar segment. Every order ends with `seq`, so the order of a set of events
/// with distinct sequence numbers is fully determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortOrder {
    /// `(time, seq)`.
    Time,
    /// `(event, time, seq)`.
    EventTime,
    /// `(event, distinct_id, time, seq)`.
    EventUserTime,
}

impl SortOrder {
    /// The order [`encode`] uses; see [`sort_permutation`] for the measurement behind it.
    pub const DEFAULT: SortOrder = SortOrder::EventTime;
    pub const ALL: [SortOrder; 3] = [SortOrder::Time, SortOrder::EventTime, SortOrder::EventUserTime];
}

impl fmt::Display for SortOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SortOrder::Time => "time",
            SortOrder::EventTime => "event,time",
            SortOrder::EventUserTime => "event,distinct_id,time",
        })
    }
}

impl FromStr for SortOrder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SortOrder::ALL.into_iter().find(|order| order.to_string() == s).ok_or_else(|| {
            format!("unknown sort order {s:?}: expected one of time, event,time, event,distinct_id,time")
        })
    }
}

/// What a columnar segment's footer says about it, read without decoding any data ([`read_meta`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnarMeta {
    pub info: SegmentInfo,
    pub format_version: u32,
    pub rows: u64,
    /// Earliest and latest event time, from the row group statistics; `None` for a segment without events.
    pub time: Option<TimeRange>,
    /// The spec as written, except `compression`, which is what the column chunks actually use (Parquet does not
    /// record zstd levels: the level is the recorded one when the codec matches the record, else the default).
    pub spec: CodecSpec,
    pub sort: SortOrder,
    pub row_groups: usize,
    /// Shredded property columns, in schema order (sorted by key).
    pub columns: Vec<ShreddedColumn>,
    /// Every property key that occurs in `_props` in some row, sorted.
    pub props_keys: Vec<String>,
    /// What the rewrite that wrote it recorded; `None` in files written before lineage was recorded.
    pub lineage: Option<Lineage>,
}

/// Errors of the columnar codec. `segment_id` is `"(unknown)"` when the footer could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ColumnarError {
    #[error("invalid codec spec: {0}")]
    InvalidSpec(#[from] CodecSpecError),
    #[error("not a readable Parquet file: {source}")]
    NotParquet {
        #[source]
        source: ParquetError,
    },
    #[error("not a tierd columnar segment: {reason}")]
    NotColumnar { reason: String },
    #[error("columnar segment format version {found:?} is not supported; this build reads version {supported}")]
    UnsupportedVersion { found: String, supported: u32 },
    #[error("segment {segment_id}: Parquet {operation} failed: {source}")]
    Parquet {
        segment_id: String,
        operation: &'static str,
        #[source]
        source: ParquetError,
    },
    #[error("segment {segment_id} is corrupt: {message}")]
    Corrupt { segment_id: String, message: String },
    /// A merge met more events of one name at one millisecond than it may hold to deduplicate them.
    #[error(
        "{events} events of {event:?} share the time {time_ms} ms: more than a merge may hold to deduplicate them"
    )]
    RunTooLarge { event: String, time_ms: i64, events: usize },
}

impl ColumnarError {
    pub(crate) fn parquet<'a>(segment_id: &'a str, operation: &'static str) -> impl FnOnce(ParquetError) -> Self + 'a {
        move |source| ColumnarError::Parquet { segment_id: segment_id.to_owned(), operation, source }
    }

    pub(crate) fn arrow<'a>(
        segment_id: &'a str,
        operation: &'static str,
    ) -> impl FnOnce(arrow_schema::ArrowError) -> Self + 'a {
        move |source| ColumnarError::Parquet { segment_id: segment_id.to_owned(), operation, source: source.into() }
    }
}

#[cfg(test)]
mod tests;
