//! Placement: which segments should move between the hot disk and the cold object store.
//!
//! For now the rule is age only (the heat- and cost-driven rules of a later issue replace it): a sealed columnar
//! segment whose *newest* event is at least `cold_after_ms` old belongs in the cold tier; a cold-only segment whose
//! newest event is younger than that belongs on the hot disk again (the threshold was raised, or a segment was moved
//! cold by hand). Row segments never go cold (cold reads are ranged Parquet reads: re-encode first). A segment on
//! both tiers is left alone: an operator asked for the hot copy (`tierd move --to both`).
//!
//! One pass moves at most `max_bytes_per_pass` (at least one segment, so a segment bigger than the limit still
//! moves): the IO budget paces the bytes, this limit bounds how long one pass holds the executor. Oldest data moves
//! first (newest event, then id), so a pass cut short by the limit made the most valuable moves.

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;
use crate::human;
use crate::planner::age_ms;
use crate::segment::{Placement, SegmentFormat, SegmentState, SegmentStats};

/// The tier a move targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveDirection {
    /// Hot -> cold (migrate).
    ToCold,
    /// Cold -> hot (promote).
    ToHot,
}

/// One planned move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveAction {
    pub segment: String,
    pub project: String,
    pub day: i32,
    pub direction: MoveDirection,
    /// What the move copies.
    pub bytes: u64,
    /// Why, with the numbers behind it.
    pub reason: String,
}

/// Age-based placement; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementPlanner {
    /// Newest event at least this old: cold. Younger: hot.
    pub cold_after_ms: i64,
    /// Most bytes one pass moves in each direction (at least one segment).
    pub max_bytes_per_pass: u64,
}

const POLICY: &str = "placement";

impl PlacementPlanner {
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.cold_after_ms < 0 {
            return Err(PolicyError::invalid(POLICY, "cold_after", "is negative: give an age of zero or more"));
        }
        if self.max_bytes_per_pass == 0 {
            return Err(PolicyError::invalid(POLICY, "max_bytes_per_pass", "is zero: no segment could ever move"));
        }
        Ok(())
    }

    /// Moves in `direction` due at `now_ms` over one catalog snapshot, oldest data first, within the byte limit.
    /// Order of `segments` does not matter; no segment twice; segments whose id is not unique are left out.
    pub fn plan(&self, now_ms: i64, segments: &[SegmentStats], direction: MoveDirection) -> Vec<MoveAction> {
        let mut seen = std::collections::HashMap::<&str, usize>::new();
        for s in segments {
            *seen.entry(s.id.as_str()).or_default() += 1;
        }
        let mut due: Vec<&SegmentStats> = segments
            .iter()
            .filter(|s| seen[s.id.as_str()] == 1 && s.state == SegmentState::Sealed)
            .filter(|s| {
                let old = age_ms(now_ms, s.max_time_ms) >= self.cold_after_ms;
                match direction {
                    MoveDirection::ToCold => {
                        s.placement == Placement::Hot && s.format == SegmentFormat::Columnar && old
                    }
                    MoveDirection::ToHot => s.placement == Placement::Cold && !old,
                }
            })
            .collect();
        due.sort_by(|a, b| a.max_time_ms.cmp(&b.max_time_ms).then_with(|| a.id.cmp(&b.id)));
        let mut total = 0u64;
        let mut out = Vec::new();
        for s in due {
            if !out.is_empty() && total.saturating_add(s.bytes) > self.max_bytes_per_pass {
                break;
            }
            total = total.saturating_add(s.bytes);
            let age = human::duration(age_ms(now_ms, s.max_time_ms));
            let limit = human::duration(self.cold_after_ms);
            let reason = match direction {
                MoveDirection::ToCold => {
                    format!(
                        "newest event {age} old >= {limit}: columnar segment of {} to the cold tier",
                        human::bytes(s.bytes)
                    )
                }
                MoveDirection::ToHot => {
                    format!(
                        "newest event {age} old < {limit}: cold segment of {} back to the hot tier",
                        human::bytes(s.bytes)
                    )
                }
            };
            out.push(MoveAction {
                segment: s.id.clone(),
                project: s.project.clone(),
                day: s.day,
                direction,
                bytes: s.bytes,
                reason,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::{col, seg, DAY_MS, MIB};

    const NOW: i64 = 100 * DAY_MS;

    fn planner() -> PlacementPlanner {
        PlacementPlanner { cold_after_ms: 7 * DAY_MS, max_bytes_per_pass: 10 * MIB }
    }

    fn aged(id: &str, age_ms: i64, placement: Placement) -> SegmentStats {
        SegmentStats { max_time_ms: NOW - age_ms, placement, ..col(id, "zstd-3") }
    }

    fn ids(actions: &[MoveAction]) -> Vec<&str> {
        actions.iter().map(|a| a.segment.as_str()).collect()
    }

    #[test]
    fn old_columnar_segments_go_cold_young_cold_ones_come_back() {
        let segments = vec![
            aged("old", 8 * DAY_MS, Placement::Hot),
            aged("exactly", 7 * DAY_MS, Placement::Hot),
            aged("young", 7 * DAY_MS - 1, Placement::Hot),
            aged("both", 30 * DAY_MS, Placement::Both),
            aged("cold-young", DAY_MS, Placement::Cold),
            aged("cold-old", 30 * DAY_MS, Placement::Cold),
            SegmentStats { max_time_ms: NOW - 30 * DAY_MS, ..seg("rows") },
            SegmentStats { state: SegmentState::Open, ..aged("open", 30 * DAY_MS, Placement::Hot) },
            SegmentStats { state: SegmentState::Retired, ..aged("retired", 30 * DAY_MS, Placement::Hot) },
        ];
        let cold = planner().plan(NOW, &segments, MoveDirection::ToCold);
        assert_eq!(ids(&cold), vec!["old", "exactly"]);
        assert!(cold[0].reason.contains("8d old >= 7d"), "{}", cold[0].reason);
        let hot = planner().plan(NOW, &segments, MoveDirection::ToHot);
        assert_eq!(ids(&hot), vec!["cold-young"]);
    }

    #[test]
    fn a_pass_moves_oldest_first_within_its_byte_limit_but_at_least_one() {
        let segments: Vec<_> = (0..5)
            .map(|i| SegmentStats { bytes: 4 * MIB, ..aged(&format!("s{i}"), (20 - i) * DAY_MS, Placement::Hot) })
            .collect();
        assert_eq!(ids(&planner().plan(NOW, &segments, MoveDirection::ToCold)), vec!["s0", "s1"]);
        let big = vec![SegmentStats { bytes: 50 * MIB, ..aged("big", 20 * DAY_MS, Placement::Hot) }];
        assert_eq!(ids(&planner().plan(NOW, &big, MoveDirection::ToCold)), vec!["big"]);
    }

    #[test]
    fn invalid_configurations_name_the_field() {
        let e = PlacementPlanner { cold_after_ms: -1, ..planner() }.validate().unwrap_err().to_string();
        assert!(e.contains("cold_after"), "{e}");
        let e = PlacementPlanner { max_bytes_per_pass: 0, ..planner() }.validate().unwrap_err().to_string();
        assert!(e.contains("max_bytes_per_pass"), "{e}");
    }

    fn segment() -> impl Strategy<Value = SegmentStats> {
        (
            0..40u32,
            0..60i64,
            0..3u8,
            prop_oneof![4 => Just(SegmentState::Sealed), 1 => Just(SegmentState::Open), 1 => Just(SegmentState::Retired)],
            any::<bool>(),
            0..(8 * MIB),
        )
            .prop_map(|(id, age_days, placement, state, columnar, bytes)| SegmentStats {
                state,
                bytes,
                format: if columnar { SegmentFormat::Columnar } else { SegmentFormat::Rows },
                ..aged(&format!("s{id:02}"), age_days * DAY_MS / 4, [Placement::Hot, Placement::Cold, Placement::Both][placement as usize])
            })
    }

    proptest! {
        /// Any segment set: order does not matter, no segment twice, only sealed segments of the right placement
        /// and format, the byte limit holds (beyond one segment), and the directions never share a segment.
        #[test]
        fn plans_keep_their_invariants(
            segments in prop::collection::vec(segment(), 0..50).prop_shuffle(),
            cold_days in 0..15i64,
            max_mib in 1..20u64,
        ) {
            let p = PlacementPlanner { cold_after_ms: cold_days * DAY_MS, max_bytes_per_pass: max_mib * MIB };
            let mut reversed = segments.clone();
            reversed.reverse();
            let mut all = std::collections::HashSet::new();
            for direction in [MoveDirection::ToCold, MoveDirection::ToHot] {
                let plan = p.plan(NOW, &segments, direction);
                prop_assert_eq!(&plan, &p.plan(NOW, &reversed, direction));
                let total: u64 = plan.iter().map(|a| a.bytes).sum();
                prop_assert!(plan.len() <= 1 || total <= p.max_bytes_per_pass);
                for a in &plan {
                    prop_assert!(all.insert(a.segment.clone()), "{} planned twice", a.segment);
                    let matching: Vec<_> = segments.iter().filter(|s| s.id == a.segment).collect();
                    prop_assert_eq!(matching.len(), 1);
                    let s = matching[0];
                    prop_assert_eq!(s.state, SegmentState::Sealed);
                    match direction {
                        MoveDirection::ToCold => {
                            prop_assert_eq!(s.placement, Placement::Hot);
                            prop_assert_eq!(s.format, SegmentFormat::Columnar);
                            prop_assert!(NOW - s.max_time_ms >= p.cold_after_ms);
                        }
                        MoveDirection::ToHot => {
                            prop_assert_eq!(s.placement, Placement::Cold);
                            prop_assert!(NOW - s.max_time_ms < p.cold_after_ms);
                        }
                    }
                }
                // Nothing due was skipped except for the byte limit: a plan within the limit is complete.
                let unlimited = PlacementPlanner { max_bytes_per_pass: u64::MAX, ..p.clone() }.plan(NOW, &segments, direction);
                prop_assert!(plan.len() == unlimited.len() || total.saturating_add(unlimited[plan.len()].bytes) > p.max_bytes_per_pass);
                prop_assert_eq!(&unlimited[..plan.len()], &plan[..]);
            }
        }
    }
}
