//! The store's error type. Variants say what and where (segment id, path, key) and carry their sources (sled,
//! serde_json, std::io, object_store, tokio), so callers decide by variant and logs keep the whole chain.

use std::path::PathBuf;

use crate::layout::{SegmentId, Tier};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// sled failed: an I/O error under the catalog, or a corrupt database.
    #[error("catalog: cannot {op}: {source}")]
    Catalog {
        op: &'static str,
        #[source]
        source: sled::Error,
    },
    #[error("catalog: cannot decode {what} {key:?}: {source}")]
    CatalogDecode {
        what: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("catalog: cannot encode {what}: {source}")]
    CatalogEncode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("catalog: record {key:?} is not valid: {message}")]
    CatalogRecord { key: String, message: String },
    #[error("catalog schema version {found} is not supported by this tierd (it reads versions up to {supported})")]
    CatalogSchema { found: u32, supported: u32 },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A catalog location that does not resolve to a path under the data directory.
    #[error("invalid hot location {location:?}: not a relative path under the data directory")]
    InvalidLocation { location: String },
    #[error("segment {id} not found")]
    SegmentNotFound { id: SegmentId },
    #[error("segment {id} at {path} is missing on disk (the catalog says it holds {rows} rows)")]
    SegmentMissing { id: SegmentId, path: PathBuf, rows: u64 },
    #[error("segment {id} is corrupt: {message}")]
    Corrupt { id: SegmentId, message: String },
    #[error("segment {id} has no copy this reader can read: {message}")]
    NoReadableCopy { id: SegmentId, message: String },
    #[error("ingest is backpressured: {0}")]
    Backpressure(String),
    #[error("the hot tier is full: {0}")]
    HotTierFull(String),
    #[error(
        "the batch has events on {days} UTC days, more than the {max} segments that may be open at once \
         (hot.max_open_segments); split it by day"
    )]
    BatchTooWide { days: usize, max: usize },
    #[error("the hot tier is shutting down")]
    ShuttingDown,
    /// The hot writer stopped accepting writes after a failure it cannot undo (a failed catalog commit).
    #[error("the hot writer stopped: {reason}")]
    WriterStopped { reason: String },
    /// A write group failed before its commit; nothing of it was written.
    #[error("the write was not made durable: {reason}")]
    WriteFailed { reason: String },
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A query crossed one of its own bounds (memory, groups): it asks too much, retrying will not help.
    #[error("query too large: {0}")]
    QueryTooLarge(String),
    /// The queries running together hold the shared memory pool: retrying later may succeed.
    #[error("too busy for this query: {0}")]
    QueryBusy(String),
    /// Background work would eat into the hot disk's reserve: not started, retried later.
    #[error("disk reserve: {0}")]
    DiskReserve(String),
    /// A rewrite would hold more memory than `rewrite.max_memory_bytes` allows: not started.
    #[error("rewrite too large: {0}")]
    RewriteTooLarge(String),
    /// The query was stopped from outside (a timeout, a client that went away).
    #[error("query stopped: {0}")]
    QueryCancelled(String),
    #[error("the plan is stale: {0}")]
    StalePlan(String),
    /// A background run stopped between two actions because the daemon is shutting down; what it did is committed.
    #[error("stopped: {0}")]
    Stopped(String),
    /// `tierd catalog rebuild` will not run (a daemon holds the data directory, the catalog still opens, ...).
    #[error("catalog rebuild refused: {0}")]
    RebuildRefused(String),
    #[error("cannot move: {0}")]
    InvalidMove(String),
    #[error("no trash batch {batch_ms} (batches: {batches:?})")]
    TrashBatchNotFound { batch_ms: i64, batches: Vec<i64> },
    #[error("config key `{key}`: {message}")]
    Config { key: &'static str, message: String },
    #[error("{op} on the {} tier: object {key:?} not found", tier.label())]
    ObjectNotFound { tier: Tier, op: &'static str, key: String },
    #[error("{op} on the {} tier: object {key:?} already exists (object keys are never reused)", tier.label())]
    ObjectExists { tier: Tier, op: &'static str, key: String },
    #[error("{op} on the {} tier: invalid object key {key:?}: {message}", tier.label())]
    InvalidObjectKey { tier: Tier, op: &'static str, key: String, message: String },
    #[error("{op} on the {} tier: object {key:?} failed after {attempts} attempt(s): {source}", tier.label())]
    ObjectStore {
        tier: Tier,
        op: &'static str,
        key: String,
        attempts: u32,
        #[source]
        source: Box<object_store::Error>,
    },
    /// A task the store ran on another thread panicked or was cancelled.
    #[error("{what}: the task failed: {source}")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io { path: path.into(), source }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
