//! Pure encoding of tierd events.
//!
//! This crate turns bytes into events and events into bytes, and nothing else: no filesystem, no clock, no async.
//! `store` owns every byte of I/O and calls in here.
//!
//! - [`event`]: the event model and validation of Mixpanel `/import` bodies (JSON array or NDJSON), into
//!   [`Event`]s or, for the ingest path, straight into rows ([`RowBatch`]) without a tree of JSON values.
//! - [`rows`]: the hot row format: an append-only file of checksummed, lz4-compressed frames, one frame per
//!   acknowledged batch part, so a torn tail after a crash is detected and dropped.
//! - [`dedup`]: the dedup key `(project, event, distinct_id, time_ms, $insert_id)` and the pure dedup step
//!   (the copy ingested last, i.e. with the highest ingest sequence, wins), and its lossless variant that also
//!   returns the removed copies.
//! - [`filter`]: [`RowFilter`], which stored rows a deletion (retention, user deletions) removes, and what a
//!   segment's time range alone says about them.
//! - [`columnar`]: the columnar segment format, plain Parquet with shredded properties and a JSON remainder, that
//!   sealed hot segments are re-encoded into; encode, decode, scan with pruning, recompress.
//!
//! A later issue adds the compression ladder here.

pub mod columnar;
pub mod condition;
pub mod dedup;
pub mod event;
pub mod filter;
mod hash;
mod json;
pub mod rows;
#[cfg(test)]
mod testing;

pub use dedup::{dedup_key, dedup_key_of, dedup_sorted, dedup_split, DedupKey};
pub use event::{
    decode_data, derive_insert_id, parse_batch, parse_batch_reference, parse_batch_rows, parse_batch_rows_with,
    BatchError, BatchLimits, DataError, Event, EventRow, ParseOptions, ParsedBatch, RecordDefaults, RecordError,
    RowBatch, StoredEvent, TimeRange,
};
pub use filter::{Coverage, RowFilter};
pub use hash::{Xxh3Hasher, Xxh3State};
pub use rows::{FrameBody, RowsError, SegmentHeader, ValidPrefix};
