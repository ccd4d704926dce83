//! The trash: what garbage collection deleted and still keeps (`GET /v1/admin/trash`), and putting deleted segments
//! back (`POST /v1/admin/trash/restore`).

use serde::{Deserialize, Serialize};
use tierd_store::catalog::{Location, SegmentState};

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

/// What a restore did with one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreStatus {
    /// Back in service with a fresh hot copy.
    Restored,
    /// The catalog has a record of it: nothing to do.
    InCatalog,
    /// The batch holds no record of it.
    NotInBatch,
    /// A step failed; `error` says which.
    Error,
}

impl RestoreStatus {
    pub fn label(self) -> &'static str {
        match self {
            RestoreStatus::Restored => "restored",
            RestoreStatus::InCatalog => "in_catalog",
            RestoreStatus::NotInBatch => "not_in_batch",
            RestoreStatus::Error => "error",
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_labels_are_the_serde_names() {
        for s in [RestoreStatus::Restored, RestoreStatus::InCatalog, RestoreStatus::NotInBatch, RestoreStatus::Error] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.label());
        }
    }
}
