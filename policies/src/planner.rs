//! The rewrite planner contract, and the selection steps every planner shares.
//!
//! A planner is a pure function of its configuration, `now_ms` and a snapshot of segment stats. Whatever it returns
//! keeps these invariants, for every input (the property tests in `tests/planner_properties.rs` check them):
//! - the plan does not depend on the order of `segments` (actions come out in a fixed order);
//! - no segment is in two actions, nor twice in one;
//! - every input is sealed and of the planner's format, and all inputs of an action share project and day;
//! - `bytes_before` is the sum of the inputs' bytes.
//!
//! Plans of *different* planners may share a segment (a small old columnar segment can be both a compaction input
//! and due for recompression). The executor applies one action over a segment and re-plans from the next catalog
//! snapshot; it must never apply two actions planned from the same snapshot that share an input.

use std::collections::{BTreeMap, HashMap};

use crate::error::PolicyError;
use crate::segment::{RewriteAction, RewriteKind, SegmentFormat, SegmentState, SegmentStats};

/// A rewrite policy.
pub trait RewritePlanner {
    /// The kind of every action this planner returns.
    fn kind(&self) -> RewriteKind;

    /// Checks the configuration; the error names the field and says what to set. Call it when the configuration
    /// is loaded. `plan` never panics on an invalid configuration and still keeps the invariants above, but what it
    /// plans is only meaningful for a valid one.
    fn validate(&self) -> Result<(), PolicyError>;

    /// The actions due at `now_ms` over `segments` (one catalog snapshot).
    fn plan(&self, now_ms: i64, segments: &[SegmentStats]) -> Vec<RewriteAction>;
}

/// Sealed segments of `format` whose id is unique in `segments`.
///
/// A duplicated id is a broken catalog invariant; acting on either copy could rewrite the wrong data, and choosing
/// one would make the plan depend on input order, so both are left out.
pub(crate) fn candidates(segments: &[SegmentStats], format: SegmentFormat) -> impl Iterator<Item = &SegmentStats> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(segments.len());
    for s in segments {
        *seen.entry(s.id.as_str()).or_default() += 1;
    }
    segments.iter().filter(move |s| s.state == SegmentState::Sealed && s.format == format && seen[s.id.as_str()] == 1)
}

/// Segments grouped by (project, day), groups in key order. Order within a group is the input order: callers sort.
pub(crate) fn by_project_day<'a>(
    segments: impl Iterator<Item = &'a SegmentStats>,
) -> BTreeMap<(&'a str, i32), Vec<&'a SegmentStats>> {
    let mut groups: BTreeMap<(&str, i32), Vec<&SegmentStats>> = BTreeMap::new();
    for s in segments {
        groups.entry((s.project.as_str(), s.day)).or_default().push(s);
    }
    groups
}

/// `now - then` without overflow: the age of something that happened at `then`.
pub(crate) fn age_ms(now_ms: i64, then_ms: i64) -> i64 {
    now_ms.saturating_sub(then_ms)
}

/// `n` with a singular or plural noun: "1 segment", "3 segments".
pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
