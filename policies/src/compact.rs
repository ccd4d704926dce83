//! Compaction: small columnar segments of one (project, day) are merged.
//!
//! Many small segments cost a request and a footer read each, and compress worse than one large one. They appear
//! when a day's row segments re-encode into a small output, and, for days long past, whenever late events arrive:
//! each late batch becomes a new small segment of its old day. Compaction merges them with that day's other small
//! segments, whatever the day's age, so late events need no special case.
//!
//! A segment is *small* when `bytes < small_fraction * target_bytes`. Per (project, day), small segments are
//! bin-packed first-fit decreasing (largest first, ties by id) into bins of at most `target_bytes` input bytes; a bin
//! of fewer than `min_inputs` segments is not planned, and its segments wait for more small segments of their day.
//! So an action never merges one segment (`min_inputs >= 2`), never takes a segment that is not small, and its input
//! bytes never exceed `target_bytes`. When a day's small segments fit in `target_bytes` together, they become one
//! action. A merged output that is still small may be merged again later: each merge lowers the day's segment count
//! by at least `min_inputs - 1`, so re-planning a day that gets no new data converges, and the bytes rewritten per
//! merge are bounded by `target_bytes`.
//!
//! # Output codec
//!
//! The inputs' codec when they all share one. Otherwise the codec of the newest input (largest `created_at_ms`, ties
//! by the larger id): the newest data was written last, with the codec most recently chosen for it, normally the
//! re-encoder's fast one. Codec names are opaque here, so compaction does not pick a "stronger" one: spending CPU
//! on stronger compression is the age-aware [`RecompressPlanner`](crate::RecompressPlanner)'s decision, and it will
//! lift the merged segment again once its newest event is old enough. `target_bytes` bounds the *input* bytes;
//! with mixed codecs the output may come out somewhat larger or smaller than their sum.

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;
use crate::human;
use crate::planner::{by_project_day, candidates, count, RewritePlanner};
use crate::segment::{RewriteAction, RewriteKind, SegmentFormat, SegmentStats};

/// Merges small columnar segments of the same (project, day); see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactPlanner {
    /// Upper bound on one merge's summed input bytes; `> 0`.
    pub target_bytes: u64,
    /// Fewest inputs of one merge; `>= 2`.
    pub min_inputs: usize,
    /// A segment is small when `bytes < small_fraction * target_bytes`; in `(0, 1]`.
    pub small_fraction: f64,
}

const POLICY: &str = "compact";

impl RewritePlanner for CompactPlanner {
    fn kind(&self) -> RewriteKind {
        RewriteKind::Compact
    }

    fn validate(&self) -> Result<(), PolicyError> {
        PolicyError::require(self.target_bytes > 0, POLICY, "target_bytes", || {
            "is 0: set the size a merged segment should reach, e.g. 8388608 (8 MiB, the default)".into()
        })?;
        PolicyError::require(self.min_inputs >= 2, POLICY, "min_inputs", || {
            format!("is {}: a merge needs at least 2 inputs; set 2 or more", self.min_inputs)
        })?;
        PolicyError::require(self.small_fraction > 0.0 && self.small_fraction <= 1.0, POLICY, "small_fraction", || {
            format!("is {}: set a fraction of target_bytes in (0, 1], e.g. 0.5", self.small_fraction)
        })
    }

    fn plan(&self, _now_ms: i64, segments: &[SegmentStats]) -> Vec<RewriteAction> {
        // Clamped so that even an unvalidated configuration never plans a merge of one segment.
        let min_inputs = self.min_inputs.max(2);
        let small = candidates(segments, SegmentFormat::Columnar).filter(|s| self.is_small(s));
        let mut actions = Vec::new();
        for ((project, day), mut group) in by_project_day(small) {
            group.sort_unstable_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.id.cmp(&b.id)));
            for bin in first_fit(&group, self.target_bytes) {
                if bin.len() >= min_inputs {
                    let (codec, reason) = self.codec_and_reason(day, &bin);
                    actions.push(RewriteAction::new(RewriteKind::Compact, project, day, &bin, codec, reason));
                }
            }
        }
        actions
    }
}

impl CompactPlanner {
    fn small_threshold(&self) -> f64 {
        self.small_fraction * self.target_bytes as f64
    }

    fn is_small(&self, s: &SegmentStats) -> bool {
        (s.bytes as f64) < self.small_threshold()
    }

    fn codec_and_reason<'a>(&self, day: i32, bin: &[&'a SegmentStats]) -> (&'a str, String) {
        let newest = bin
            .iter()
            .max_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)))
            .expect("a planned bin has inputs");
        let mut codecs: Vec<&str> = bin.iter().map(|s| s.codec.as_str()).collect();
        codecs.sort_unstable();
        codecs.dedup();
        let bytes = bin.iter().map(|s| s.bytes).sum::<u64>(); // <= target_bytes
        let mut reason = format!(
            "{} of {} ({}; each < {} = {} x target_bytes {}) -> one {} segment",
            count(bin.len(), "small columnar segment"),
            human::day(day),
            human::bytes(bytes),
            human::bytes(self.small_threshold() as u64),
            self.small_fraction,
            human::bytes(self.target_bytes),
            newest.codec,
        );
        if codecs.len() > 1 {
            reason.push_str(&format!(" (mixed codecs {}: the newest input's)", codecs.join(", ")));
        }
        (newest.codec.as_str(), reason)
    }
}

/// First-fit: each segment goes into the first bin it fits in (`<= cap` bytes), else into a new bin.
fn first_fit<'a>(sorted: &[&'a SegmentStats], cap: u64) -> Vec<Vec<&'a SegmentStats>> {
    let mut bins: Vec<(u64, Vec<&SegmentStats>)> = Vec::new();
    for &s in sorted {
        let free = bins.iter_mut().find(|(total, _)| total.checked_add(s.bytes).is_some_and(|t| t <= cap));
        match free {
            Some((total, bin)) => {
                *total += s.bytes;
                bin.push(s);
            }
            None => bins.push((s.bytes, vec![s])),
        }
    }
    bins.into_iter().map(|(_, bin)| bin).collect()
}

#[cfg(test)]
mod tests;
