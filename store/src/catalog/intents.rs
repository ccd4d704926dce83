//! Intents: a copy being written that no committed record names yet.
//!
//! Every write of a new copy (a rewrite's output, a move's new copy, a segment restored from the trash) records an
//! intent durably *before* the copy is written, so that recovery can tell tierd's own uncommitted copies (deleted)
//! from data it does not know (quarantined). The commit that makes a record name the copy clears the intent in the
//! same transaction: an intent still present means "not committed". One kind of intent, one recovery home
//! (`crate::recovery::roll_back_intents`).

use serde::{Deserialize, Serialize};

use crate::layout::{Location, SegmentId};

/// What is writing the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum IntentKind {
    /// The output of a rewrite (a new segment) that will replace `inputs`.
    Rewrite { inputs: Vec<SegmentId> },
    /// A new copy of an existing segment on another tier.
    Move,
    /// A copy of a segment put back from the trash.
    Restore,
}

/// A copy being written: `location` will hold segment `segment`'s bytes once committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub segment: SegmentId,
    pub location: Location,
    #[serde(flatten)]
    pub kind: IntentKind,
    pub started_at_ms: i64,
}

impl Intent {
    pub fn new(segment: SegmentId, location: Location, kind: IntentKind, started_at_ms: i64) -> Self {
        Self { segment, location, kind, started_at_ms }
    }

    /// The key of the intent for a copy at `location`: `tier:path` (a location is never reused).
    pub(crate) fn key(location: &Location) -> String {
        format!("{}:{}", location.tier.label(), location.path)
    }
}
