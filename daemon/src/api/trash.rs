//! The trash: what garbage collection deleted and still keeps (`GET /v1/admin/trash`), and putting deleted segments
//! back (`POST /v1/admin/trash/restore`). A listed segment and a restore's outcome go on the wire as the store's
//! [`TrashedSegment`] and [`RestoreOutcome`] are.

use serde::{Deserialize, Serialize};
pub use tierd_store::trash::{RestoreOutcome, RestoreStatus, TrashedCopy, TrashedSegment};

/// The answer of `GET /v1/admin/trash`: every segment record the trash holds, oldest batch first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrashList {
    pub segments: Vec<TrashedSegment>,
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

/// The answer of `POST /v1/admin/trash/restore`: 200 even if some segments failed; 404 for an unknown batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreAnswer {
    pub batch_ms: i64,
    pub results: Vec<RestoreOutcome>,
}
