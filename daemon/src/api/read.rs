//! The read side: queries (`POST /v1/query`), catalog lookups (`GET /v1/catalog/...`) and health.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tierd_store::catalog::{Codec, DroppedLocation, Format, Lease, Location, Placement, Role, SegmentState};
use tierd_store::query::Op;
use tierd_store::SegmentId;

/// The body of `POST /v1/query`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// `default` when absent (or null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Start of the time range (inclusive), epoch milliseconds.
    pub from: i64,
    /// End of the time range (exclusive).
    pub to: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// All must hold.
    #[serde(rename = "where", default)]
    pub filters: Vec<WhereClause>,
    /// `event` or `properties.NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// Answer only the `limit` largest groups; the rest are summed in `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// One `where` filter of a query request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhereClause {
    pub property: String,
    /// By its query API name (`eq`, `neq`, ...).
    pub op: Op,
    /// Absent (or null) for `exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl WhereClause {
    /// The store's condition (an absent value is null).
    pub fn into_filter(self) -> tierd_store::query::Filter {
        tierd_store::query::Filter { property: self.property, op: self.op, value: self.value.unwrap_or(Value::Null) }
    }
}

/// The answer of `POST /v1/query`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryResponse {
    pub total: u64,
    #[serde(default)]
    pub rows: Vec<QueryRow>,
    #[serde(default)]
    pub segments_scanned: u64,
    #[serde(default)]
    pub bytes_scanned: u64,
    /// With `limit`: the groups left out and their events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<OtherGroups>,
}

/// The groups a `limit` left out of `rows`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OtherGroups {
    pub groups: u64,
    pub count: u64,
}

/// One group of a grouped query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryRow {
    /// A string, number, bool or null (events without the grouped property).
    pub key: Value,
    pub count: u64,
}

/// A segment as `GET /v1/catalog/segments` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub id: SegmentId,
    pub project: String,
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub state: SegmentState,
    /// Which tiers hold a live copy.
    pub tier: Placement,
    pub format: Format,
    pub codec: Codec,
    /// The first live copy's path (hot first), if any.
    pub location: Option<String>,
    pub locations: Vec<Location>,
    /// Copies taken out of service by moves, waiting for garbage collection.
    pub dropped: Vec<DroppedLocation>,
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub rows: u64,
    pub bytes: u64,
    /// `crc32c:` and 8 hex digits.
    pub checksum: String,
    pub created_generation: u64,
    pub role: Role,
    /// How often the segment is read (absent from answers of daemons older than read heat: zero, never read).
    #[serde(default)]
    pub heat: HeatRecord,
}

/// A segment's read heat: exponentially decayed rates (half-life `heat.half_life_secs`) as of the answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HeatRecord {
    pub reads_per_day: f64,
    pub bytes_per_day: f64,
    /// The last read counted (for a rewrite's output, its inputs' last read), epoch ms; null: never read.
    pub last_read_ms: Option<i64>,
}

/// The answer of `GET /v1/catalog/segments`: one catalog generation, and a lease that keeps its segments readable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentsAnswer {
    pub generation: u64,
    pub lease: Lease,
    pub segments: Vec<SegmentRecord>,
    /// The project's retention cutoff (ms), when it has a retention: the segments listed hold no event that is only
    /// past it, but a segment straddling it may still hold older rows until the retention pass rewrites it, and a
    /// reader of its bytes must skip rows with `time` before this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_cutoff_ms: Option<i64>,
    /// Rows of deletion requests not carried out yet (tombstones): the listed segments may still store them, and a
    /// reader of their bytes must skip every row this filter matches (by `distinct_id` and ingest `seq`), before
    /// dedup. Absent when the project has no pending deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_rows: Option<tierd_codecs::RowFilter>,
}

/// The answer of `GET /v1/catalog/projects`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectsAnswer {
    pub generation: u64,
    pub projects: Vec<String>,
}

/// The answer of `GET /healthz`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub generation: u64,
    /// `ok`.
    pub status: String,
}
