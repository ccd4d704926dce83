//! Re-encoding: sealed row segments become columnar segments.
//!
//! The hot row format is built for appending; queries and compression want columns. Once a row segment is sealed
//! and old enough, its rows are re-encoded, together with the other such segments of the same (project, day), into
//! as few columnar segments as `max_output_bytes` allows.
//!
//! Invariants of a plan (beyond those of every [`RewritePlanner`]):
//! - every sealed row segment that is old enough is in exactly one action (none is lost);
//! - an action's input bytes are `<= max_output_bytes`, unless it has a single input larger than that.
//!
//! # Packing
//!
//! Per (project, day), inputs are taken in the order their data was written (`created_at_ms`, ties by id) and
//! packed next-fit: an action is closed when the next input would take it past `max_output_bytes` (an input larger
//! than the limit becomes an action of its own and is skipped over). Keeping write
//! order keeps each output's ingest sequences and times roughly contiguous, and makes the packing stable: a new
//! segment of the day extends the last action instead of reshuffling the earlier ones. The limit is on *input*
//! bytes (lz4 rows); the columnar output is usually smaller, so the limit also bounds the output.
//!
//! # Age
//!
//! [`SegmentStats`] carries no seal time, so age is measured from `created_at_ms`, the first write. A segment is
//! sealed at the latest `hot.seal_max_age_secs` after its first write (sealing on size or shutdown comes earlier),
//! so `min_age_ms` means "sealed at least `min_age_ms - seal_max_age` ago" in the worst case; to hold sealed
//! segments back for a time X, set `min_age_ms >= seal_max_age + X`. A segment sealed by recovery after a long
//! downtime may look old at once; that is harmless, see below.
//!
//! Does the wait matter for correctness? No. A sealed segment never changes; events that arrive late for its day go
//! to a new row segment, which is re-encoded on its own later, and [`CompactPlanner`](crate::CompactPlanner) then
//! merges the resulting small columnar segment into the day. Queries keep the copy with the highest ingest sequence
//! whatever the segments' formats, so no ordering between rewrites is needed. `min_age_ms` only trades freshness
//! for efficiency: while a day is still being written, every pass would re-encode a few fresh segments into a small
//! columnar output that compaction must rewrite again; waiting lets one action take more of the day. Zero is valid.

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;
use crate::human;
use crate::planner::{age_ms, by_project_day, candidates, count, RewritePlanner};
use crate::segment::{RewriteAction, RewriteKind, SegmentFormat, SegmentStats};

/// Re-encodes sealed row segments into columnar segments; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReencodePlanner {
    /// Codec of the columnar output (the first rung of the compression ladder, typically a fast one).
    pub output_codec: String,
    /// Upper bound on one action's summed input bytes; `> 0`.
    pub max_output_bytes: u64,
    /// A segment is planned once `now - created_at_ms >= min_age_ms`; `>= 0`.
    pub min_age_ms: i64,
}

const POLICY: &str = "reencode";

impl RewritePlanner for ReencodePlanner {
    fn kind(&self) -> RewriteKind {
        RewriteKind::Reencode
    }

    fn validate(&self) -> Result<(), PolicyError> {
        PolicyError::require(!self.output_codec.is_empty(), POLICY, "output_codec", || {
            "is empty: name the columnar codec, e.g. \"zstd-3\"".into()
        })?;
        PolicyError::require(self.max_output_bytes > 0, POLICY, "max_output_bytes", || {
            "is 0: set the largest input total per output, e.g. 268435456 (256 MiB)".into()
        })?;
        PolicyError::require(self.min_age_ms >= 0, POLICY, "min_age_ms", || {
            format!("is negative ({}): set 0 to re-encode as soon as a segment is sealed", self.min_age_ms)
        })
    }

    fn plan(&self, now_ms: i64, segments: &[SegmentStats]) -> Vec<RewriteAction> {
        let old_enough =
            candidates(segments, SegmentFormat::Rows).filter(|s| age_ms(now_ms, s.created_at_ms) >= self.min_age_ms);
        let mut actions = Vec::new();
        for ((project, day), mut group) in by_project_day(old_enough) {
            group.sort_unstable_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
            let day_bytes = group.iter().map(|s| s.bytes).fold(0, u64::saturating_add);
            let packs = next_fit(&group, self.max_output_bytes);
            let parts = packs.len();
            for (part, pack) in packs.iter().enumerate() {
                let reason = self.reason(now_ms, day, pack, part, parts, day_bytes);
                actions.push(RewriteAction::new(RewriteKind::Reencode, project, day, pack, &self.output_codec, reason));
            }
        }
        actions
    }
}

impl ReencodePlanner {
    fn reason(
        &self,
        now_ms: i64,
        day: i32,
        pack: &[&SegmentStats],
        part: usize,
        parts: usize,
        day_bytes: u64,
    ) -> String {
        let bytes = pack.iter().map(|s| s.bytes).fold(0, u64::saturating_add);
        let youngest = pack.iter().map(|s| age_ms(now_ms, s.created_at_ms)).min().unwrap_or_default();
        let mut size = human::bytes(bytes);
        if pack.len() == 1 && bytes > self.max_output_bytes {
            size.push_str(&format!(", alone: over max_output_bytes {}", human::bytes(self.max_output_bytes)));
        }
        let mut reason = format!(
            "{} of {} ({size}; youngest written {} ago >= min_age {}) -> one columnar {} segment",
            count(pack.len(), "sealed row segment"),
            human::day(day),
            human::duration(youngest),
            human::duration(self.min_age_ms),
            self.output_codec,
        );
        if parts > 1 {
            reason.push_str(&format!(
                "; part {} of {}: the day's {} exceed max_output_bytes {}",
                part + 1,
                parts,
                human::bytes(day_bytes),
                human::bytes(self.max_output_bytes),
            ));
        }
        reason
    }
}

/// Packs `sorted` in order, closing a pack when the next segment would take it past `max`. A segment larger than
/// `max` gets a pack of its own and does not close the pack being filled: its neighbours in write order may still
/// share one output.
fn next_fit<'a>(sorted: &[&'a SegmentStats], max: u64) -> Vec<Vec<&'a SegmentStats>> {
    let mut packs = Vec::new();
    let mut pack: Vec<&SegmentStats> = Vec::new();
    let mut total: u64 = 0;
    for &s in sorted {
        if s.bytes > max {
            packs.push(vec![s]);
            continue;
        }
        let fits = total.checked_add(s.bytes).is_some_and(|t| t <= max);
        if !fits {
            packs.push(std::mem::take(&mut pack));
            total = 0;
        }
        total += s.bytes; // cannot overflow: `fits`, or a fresh pack and `s.bytes <= max`
        pack.push(s);
    }
    if !pack.is_empty() {
        packs.push(pack);
    }
    packs
}

#[cfg(test)]
mod tests;
