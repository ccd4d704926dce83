//! The store's error type. Variants carry what and where (segment id, path).

use std::path::PathBuf;

use crate::catalog::Tier;
use crate::layout::SegmentId;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("catalog error: {0}")]
    Catalog(String),
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
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
    #[error("the hot tier is shutting down")]
    ShuttingDown,
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("the plan is stale: {0}")]
    StalePlan(String),
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
    ObjectStore { tier: Tier, op: &'static str, key: String, attempts: u32, source: Box<object_store::Error> },
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io { path: path.into(), source }
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Catalog(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
