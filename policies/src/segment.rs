//! What a planner sees of a segment, and what it hands back.
//!
//! [`SegmentStats`] is the planners' read-only view of one catalog record: identity, placement key (project, UTC
//! day), life-cycle state, physical format and codec, size and the two timestamps the rules look at. It is a plain
//! value so that planners stay pure; `store` builds it from its catalog snapshot.
//!
//! [`RewriteAction`] is a decision, not a deed: "rewrite these inputs into one segment with this codec, because ...".
//! The executor in `store`/`daemon` carries it out with the ordered, crash-safe steps of ARCHITECTURE.md.

use serde::{Deserialize, Serialize};

/// Physical layout of a segment's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentFormat {
    /// The hot, append-only row format (`tierd_codecs::rows`).
    Rows,
    /// The columnar (Parquet) format that re-encoding produces.
    Columnar,
}

/// Life-cycle state of a segment. Only [`SegmentState::Sealed`] segments are ever planned: an open segment is still
/// being appended to, a retired one has already been replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentState {
    Open,
    Sealed,
    Retired,
}

/// Which tiers hold a segment's live copies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Only the hot disk.
    #[default]
    Hot,
    /// Only the object store.
    Cold,
    /// Both: a hot copy of a cold segment.
    Both,
}

/// A planner's view of one segment.
///
/// Planners assume `id` is unique within one call. A segment whose id occurs more than once in the input is
/// ambiguous (a broken catalog invariant) and is left out of every plan rather than acted on twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentStats {
    /// Opaque, unique.
    pub id: String,
    pub project: String,
    /// UTC day of the events (days since 1970-01-01); every event of the segment falls in it.
    pub day: i32,
    pub state: SegmentState,
    pub format: SegmentFormat,
    /// Opaque codec name ("lz4", "zstd-3", ...). Only a recompress ladder gives codecs an order.
    pub codec: String,
    pub rows: u64,
    pub bytes: u64,
    /// When the segment's data was first written; for a rewrite's output, the oldest input's.
    pub created_at_ms: i64,
    /// Time of the newest event in the segment.
    pub max_time_ms: i64,
    /// Where its live copies are.
    #[serde(default)]
    pub placement: Placement,
    /// Since when the segment has had its current placement (its last committed move; for a segment never moved,
    /// when it was created). Residency rules count from here.
    #[serde(default)]
    pub placed_at_ms: i64,
    /// Read heat: the exponentially decayed read rate, in reads per day, as of the snapshot (0 = never read, or
    /// long ago). Filled from the heat tracker; planners must treat it as an estimate.
    #[serde(default)]
    pub heat: f64,
    /// The decayed rate of bytes read, in bytes per day, beside [`SegmentStats::heat`].
    #[serde(default)]
    pub heat_bytes: f64,
}

/// What a rewrite does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewriteKind {
    /// Sealed row segments -> one columnar segment.
    Reencode,
    /// Several small columnar segments of one (project, day) -> one columnar segment.
    Compact,
    /// One columnar segment -> the same data with a stronger codec.
    Recompress,
}

/// One planned rewrite: its inputs become one new segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewriteAction {
    pub kind: RewriteKind,
    pub project: String,
    pub day: i32,
    /// Ids of the input segments, sorted; never empty, never a duplicate.
    pub inputs: Vec<String>,
    pub output_codec: String,
    /// Sum of the inputs' `bytes`: what the executor reads, and what it frees once the output is committed.
    pub bytes_before: u64,
    /// Why this action, with the numbers that triggered it; for logs, `tierd plan` and the API.
    pub reason: String,
}

impl RewriteAction {
    /// Builds an action over `inputs` (all of `project` and `day`), sorting their ids and summing their bytes.
    pub(crate) fn new(
        kind: RewriteKind,
        project: &str,
        day: i32,
        inputs: &[&SegmentStats],
        output_codec: &str,
        reason: String,
    ) -> RewriteAction {
        debug_assert!(!inputs.is_empty());
        debug_assert!(inputs.iter().all(|s| s.project == project && s.day == day));
        let mut ids: Vec<String> = inputs.iter().map(|s| s.id.clone()).collect();
        ids.sort_unstable();
        RewriteAction {
            kind,
            project: project.to_owned(),
            day,
            inputs: ids,
            output_codec: output_codec.to_owned(),
            bytes_before: inputs.iter().map(|s| s.bytes).fold(0, u64::saturating_add),
            reason,
        }
    }
}
