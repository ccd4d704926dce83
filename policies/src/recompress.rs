//! Recompression: columnar segments move up a compression ladder as their data ages.
//!
//! Fresh data is read often and written with a fast codec; old data is read rarely and is worth the CPU of a
//! stronger codec once, for smaller bytes every month after. The ladder says which codec data of which age should
//! have: steps of strictly increasing `min_age_ms`, each with its own codec, a step's position being its rank.
//!
//! The age of a segment is the age of its *newest* event, `now - max_time_ms`: a segment is only as cold as the
//! most recent data in it, and the age cannot be reset by a rewrite (`created_at_ms` of a merge is its oldest
//! input's, which would make freshly merged late events look old). A segment whose age has reached step `k` and
//! whose codec sits lower in the ladder, or is not in the ladder at all, is recompressed to the codec of the highest
//! step reached, one action per segment: a segment that skipped steps (planning paused, or a late merge) goes
//! straight to where its age puts it, never through the steps in between.
//!
//! A segment never moves down: a codec at or above the reached step stays, even if the ladder changed since. A
//! codec not in the ladder is taken to be below it (for example "lz4" or "none" written before a ladder existed).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;
use crate::human;
use crate::planner::{age_ms, candidates, RewritePlanner};
use crate::segment::{RewriteAction, RewriteKind, SegmentFormat, SegmentStats};

/// One rung of the ladder: data at least `min_age_ms` old should have `codec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LadderStep {
    pub min_age_ms: i64,
    pub codec: String,
}

/// Recompresses columnar segments as their data ages; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecompressPlanner {
    /// Non-empty; `min_age_ms >= 0` and strictly increasing; codecs non-empty and distinct.
    pub ladder: Vec<LadderStep>,
}

const POLICY: &str = "recompress";

impl RewritePlanner for RecompressPlanner {
    fn kind(&self) -> RewriteKind {
        RewriteKind::Recompress
    }

    fn validate(&self) -> Result<(), PolicyError> {
        PolicyError::require(!self.ladder.is_empty(), POLICY, "ladder", || {
            "is empty: give at least one step {min_age_ms, codec}".into()
        })?;
        let mut codecs = HashSet::new();
        for (i, step) in self.ladder.iter().enumerate() {
            let (codec, age) = (format!("ladder[{i}].codec"), format!("ladder[{i}].min_age_ms"));
            PolicyError::require(!step.codec.is_empty(), POLICY, &codec, || "is empty: name a codec".into())?;
            PolicyError::require(codecs.insert(step.codec.as_str()), POLICY, &codec, || {
                format!("repeats {:?}: each codec may appear on one step only", step.codec)
            })?;
            PolicyError::require(step.min_age_ms >= 0, POLICY, &age, || {
                format!("is negative ({}): ages are 0 or more", step.min_age_ms)
            })?;
            if let Some(prev) = i.checked_sub(1).map(|p| &self.ladder[p]) {
                PolicyError::require(step.min_age_ms > prev.min_age_ms, POLICY, &age, || {
                    format!(
                        "is {} but ladder[{}].min_age_ms is {}: order the steps by strictly increasing age",
                        step.min_age_ms,
                        i - 1,
                        prev.min_age_ms
                    )
                })?;
            }
        }
        Ok(())
    }

    fn plan(&self, now_ms: i64, segments: &[SegmentStats]) -> Vec<RewriteAction> {
        let mut due: Vec<(&SegmentStats, &LadderStep, i64)> = Vec::new();
        for s in candidates(segments, SegmentFormat::Columnar) {
            let age = age_ms(now_ms, s.max_time_ms);
            // The highest step reached (for a valid ladder the reached steps are a prefix).
            let Some(target) = self.ladder.iter().rposition(|step| step.min_age_ms <= age) else {
                continue;
            };
            // (`rposition`: should an unvalidated ladder repeat a codec, its highest step counts, so the target
            // step's codec is never "above" itself.)
            let current = self.ladder.iter().rposition(|step| step.codec == s.codec);
            // `current >= target` is never planned: that would be a move down the ladder, or nothing at all.
            if current.is_some_and(|c| c >= target) {
                continue;
            }
            due.push((s, &self.ladder[target], age));
        }
        due.sort_unstable_by(|(a, ..), (b, ..)| (&a.project, a.day, &a.id).cmp(&(&b.project, b.day, &b.id)));
        due.into_iter()
            .map(|(s, step, age)| {
                let from = if self.ladder.iter().any(|step| step.codec == s.codec) {
                    s.codec.clone()
                } else {
                    format!("{} (not in the ladder)", s.codec)
                };
                let reason = format!(
                    "age {} >= {}: {from} -> {} ({})",
                    human::duration(age),
                    human::duration(step.min_age_ms),
                    step.codec,
                    human::bytes(s.bytes),
                );
                RewriteAction::new(RewriteKind::Recompress, &s.project, s.day, &[s], &step.codec, reason)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
