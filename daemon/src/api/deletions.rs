//! User deletions (`POST /v1/admin/deletions`, `GET /v1/admin/deletions[/{id}]`). A request goes on the wire as the
//! store's [`DeletionRequest`] is; the listing leaves the distinct ids out (a count instead), so it stays small.

use serde::{Deserialize, Serialize};
pub use tierd_store::deletions::{DeletionId, DeletionProgress, DeletionRequest, DeletionState, EventSelection};

use super::WhereClause;

/// Body of `POST /v1/admin/deletions`: one project and exactly one of `distinct_id`, `distinct_ids` and `filter`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionBody {
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<DeletionFilter>,
}

/// A filtered delete: events of `event` (any name when absent) in `[from, to)` (ms) for which every `where` condition
/// holds, in the query API's words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub from: i64,
    pub to: i64,
    #[serde(default, rename = "where", skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<WhereClause>,
}

/// The answer of `POST /v1/admin/deletions`: the request is durable; readers no longer see its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletionAccepted {
    pub id: DeletionId,
    pub state: DeletionState,
    /// The highest ingest sequence the request covers: the users' events ingested after it are kept.
    pub max_seq: u64,
}

/// One request in `GET /v1/admin/deletions`: everything but the ids themselves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletionSummary {
    pub id: DeletionId,
    pub project: String,
    /// How many distinct ids the request names (`GET /v1/admin/deletions/{id}` lists them; 0 for a filtered delete).
    pub distinct_ids: usize,
    /// A filtered delete's selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventSelection>,
    pub created_at_ms: i64,
    pub max_seq: u64,
    pub state: DeletionState,
    pub progress: DeletionProgress,
}

impl From<&DeletionRequest> for DeletionSummary {
    fn from(r: &DeletionRequest) -> Self {
        DeletionSummary {
            id: r.id,
            project: r.project.clone(),
            distinct_ids: r.distinct_ids.len(),
            events: r.events.clone(),
            created_at_ms: r.created_at_ms,
            max_seq: r.max_seq,
            state: r.state,
            progress: r.progress.clone(),
        }
    }
}

/// The answer of `GET /v1/admin/deletions`: every request, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletionList {
    pub deletions: Vec<DeletionSummary>,
}
