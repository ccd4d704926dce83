//! The trash: what garbage collection deleted and still keeps (`GET /v1/admin/trash`), and putting deleted segments
//! back (`POST /v1/admin/trash/restore`).

use serde::{Deserialize, Serialize};
use tierd_store::catalog::{Location, SegmentState};

use super::labels::labelled_enum;

/// The answer of `GET /v1/admin/trash`: every segment record the trash holds, oldest batch first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrashList {
    pub segments: Vec<TrashedSegment>,
}

/// A segment whose record a gc batch saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrashedSegment {
    /// The batch: the time (ms) of the gc run that deleted it.
    pub batch_ms: i64,
    pub id: String,
    pub project: String,
    /// `YYYY-MM-DD`.
    pub day: String,
    pub rows: u64,
    pub bytes: u64,
    /// The record's state when it was saved.
    pub state: SegmentState,
    pub copies: Vec<TrashedCopy>,
    /// Whether the catalog has a record of the segment now (then it is not restored).
    pub in_catalog: bool,
}

/// One copy of a trashed segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrashedCopy {
    /// Where the copy was in service.
    pub location: Location,
    /// Where it waits now (a path under the data directory, or a key in the bucket).
    pub trash_path: String,
    /// Whether it is still there.
    pub present: bool,
}

/// Body of `POST /v1/admin/trash/restore`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The trash batch (the time of the gc run, as `GET /v1/admin/trash` lists it).
    pub batch_ms: i64,
    /// Segments of the batch to restore; all of them when absent or empty.
    #[serde(default)]
    pub segments: Vec<String>,
}

labelled_enum! {
    /// What a restore did with one segment (the store's `RestoreStatus`, as the API writes it).
    pub enum RestoreStatus {
        /// Back in service with a fresh hot copy.
        Restored = "restored",
        /// The catalog has a record of it: nothing to do.
        InCatalog = "in_catalog",
        /// The batch holds no record of it.
        NotInBatch = "not_in_batch",
        /// A step failed; `error` says which.
        Error = "error",
    }
}

/// One segment's row of a restore answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreResult {
    pub segment: String,
    pub outcome: RestoreStatus,
    /// The restored copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer of `POST /v1/admin/trash/restore`: 200 even if some segments failed; 404 for an unknown batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreAnswer {
    pub batch_ms: i64,
    pub results: Vec<RestoreResult>,
}
