//! Property tests of the rewrite planners, through the public API only.
//!
//! For arbitrary segment sets (every state and format, shared and duplicated ids, extreme sizes and times) and
//! arbitrary valid configurations, every plan must: not depend on input order; act on no segment twice; take only
//! sealed inputs of the planner's format, all of one (project, day); report `bytes_before` exactly; and keep each
//! planner's own limits and completeness rules.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;
use tierd_policies::{
    CompactPlanner, LadderStep, Placement, RecompressPlanner, ReencodePlanner, RewriteAction, RewritePlanner,
    SegmentFormat, SegmentState, SegmentStats,
};

const CODECS: [&str; 6] = ["lz4", "none", "zstd-1", "zstd-3", "zstd-9", "zstd-19"];

fn time() -> impl Strategy<Value = i64> {
    // A narrow range, so that ages often land exactly on a limit and write times often tie.
    prop_oneof![20 => 0..=100_i64, 1 => Just(i64::MIN), 1 => Just(i64::MAX)]
}

fn bytes() -> impl Strategy<Value = u64> {
    prop_oneof![20 => 0..=2_000_u64, 1 => Just(u64::MAX), 1 => (u64::MAX / 2)..=u64::MAX]
}

fn segment() -> impl Strategy<Value = SegmentStats> {
    (
        // Ids from a small pool: most are unique, some collide (a broken invariant the planners must survive).
        0..80_u32,
        prop::sample::select(vec!["a", "b"]),
        0..3_i32,
        prop_oneof![4 => Just(SegmentState::Sealed), 1 => Just(SegmentState::Open), 1 => Just(SegmentState::Retired)],
        prop_oneof![Just(SegmentFormat::Rows), Just(SegmentFormat::Columnar)],
        prop::sample::select(CODECS.to_vec()),
        bytes(),
        time(),
        time(),
    )
        .prop_map(|(id, project, day, state, format, codec, bytes, created_at_ms, max_time_ms)| SegmentStats {
            id: format!("s{id:02}"),
            project: project.to_owned(),
            day: 20_000 + day,
            state,
            format,
            codec: codec.to_owned(),
            rows: bytes / 10,
            bytes,
            created_at_ms,
            max_time_ms,
            placement: Placement::Hot,
            placed_at_ms: created_at_ms,
            heat: 0.0,
            heat_bytes: 0.0,
        })
}

/// A segment set and the same set shuffled.
fn segments() -> impl Strategy<Value = (Vec<SegmentStats>, Vec<SegmentStats>)> {
    prop::collection::vec(segment(), 0..60).prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
}

fn now() -> impl Strategy<Value = i64> {
    prop_oneof![20 => 0..=150_i64, 1 => Just(i64::MIN), 1 => Just(i64::MAX)]
}

fn reencode_planner() -> impl Strategy<Value = ReencodePlanner> {
    (1..=4_000_u64, 0..=80_i64).prop_map(|(max_output_bytes, min_age_ms)| ReencodePlanner {
        output_codec: "zstd-3".to_owned(),
        max_output_bytes,
        min_age_ms,
    })
}

fn compact_planner() -> impl Strategy<Value = CompactPlanner> {
    (1..=4_000_u64, 2..=4_usize, 0.05..=1.0_f64).prop_map(|(target_bytes, min_inputs, small_fraction)| CompactPlanner {
        target_bytes,
        min_inputs,
        small_fraction,
    })
}

fn recompress_planner() -> impl Strategy<Value = RecompressPlanner> {
    (Just(CODECS.to_vec()).prop_shuffle(), prop::collection::vec(1..=40_i64, 1..=4), 0..=20_i64).prop_map(
        |(codecs, gaps, first)| {
            let mut min_age_ms = first;
            let ladder = gaps
                .iter()
                .zip(codecs)
                .map(|(gap, codec)| {
                    let step = LadderStep { min_age_ms, codec: codec.to_owned() };
                    min_age_ms += gap;
                    step
                })
                .collect();
            RecompressPlanner { ladder }
        },
    )
}

/// Segments whose id occurs once: the only ones a planner may act on.
fn unique(segments: &[SegmentStats]) -> HashMap<&str, &SegmentStats> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for s in segments {
        *count.entry(&s.id).or_default() += 1;
    }
    segments.iter().filter(|s| count[s.id.as_str()] == 1).map(|s| (s.id.as_str(), s)).collect()
}

fn is_candidate(s: &SegmentStats, format: SegmentFormat) -> bool {
    s.state == SegmentState::Sealed && s.format == format
}

/// The invariants every planner keeps; returns each action's inputs.
fn check_common<'a>(
    planner: &impl RewritePlanner,
    format: SegmentFormat,
    now: i64,
    segments: &'a [SegmentStats],
    shuffled: &[SegmentStats],
) -> Result<(Vec<RewriteAction>, Vec<Vec<&'a SegmentStats>>), TestCaseError> {
    prop_assert_eq!(planner.validate(), Ok(()));
    let actions = planner.plan(now, segments);
    // (a) The order of the segments does not matter.
    prop_assert_eq!(&actions, &planner.plan(now, shuffled));

    let by_id = unique(segments);
    let mut planned = HashSet::new();
    let mut all_inputs = Vec::new();
    for a in &actions {
        prop_assert_eq!(a.kind, planner.kind());
        prop_assert!(!a.inputs.is_empty());
        // Sorted, and (b) no id twice in one action (strictly increasing) nor in two actions.
        prop_assert!(a.inputs.windows(2).all(|w| w[0] < w[1]), "inputs not sorted/unique: {:?}", a.inputs);
        let mut inputs = Vec::new();
        for id in &a.inputs {
            prop_assert!(planned.insert(id.clone()), "{} planned twice", id);
            // Only a segment whose id is unique may be planned.
            let s =
                *by_id.get(id.as_str()).ok_or_else(|| TestCaseError::fail(format!("{id}: unknown or ambiguous")))?;
            // (c) Sealed, the planner's format, the action's project and day.
            prop_assert!(is_candidate(s, format), "{:?}", s);
            prop_assert_eq!((&s.project, s.day), (&a.project, a.day));
            inputs.push(s);
        }
        // (e) bytes_before is the inputs' sum.
        let sum: u128 = inputs.iter().map(|s| u128::from(s.bytes)).sum();
        prop_assert_eq!(u128::from(a.bytes_before), sum);
        prop_assert!(!a.reason.is_empty());
        all_inputs.push(inputs);
    }
    Ok((actions, all_inputs))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn reencode_plans_keep_their_invariants(
        (segments, shuffled) in segments(), now in now(), planner in reencode_planner(),
    ) {
        let (actions, inputs) = check_common(&planner, SegmentFormat::Rows, now, &segments, &shuffled)?;
        let max = planner.max_output_bytes;
        for (a, ins) in actions.iter().zip(&inputs) {
            prop_assert_eq!(&a.output_codec, &planner.output_codec);
            // (d) Within the limit, unless a single input.
            prop_assert!(a.bytes_before <= max || ins.len() == 1, "{:?}", a);
            for s in ins {
                prop_assert!(now.saturating_sub(s.created_at_ms) >= planner.min_age_ms);
            }
        }
        // No segment is lost: every old-enough sealed row segment (with a unique id) is in an action.
        let planned: HashSet<&str> = actions.iter().flat_map(|a| &a.inputs).map(String::as_str).collect();
        let due: HashSet<&str> = unique(&segments)
            .into_values()
            .filter(|s| is_candidate(s, SegmentFormat::Rows))
            .filter(|s| now.saturating_sub(s.created_at_ms) >= planner.min_age_ms)
            .map(|s| s.id.as_str())
            .collect();
        prop_assert_eq!(planned, due);
        // Packing is not wasteful: of a day's actions within the limit, no two neighbours would fit in one.
        let mut by_day: BTreeMap<(&str, i32), Vec<u64>> = BTreeMap::new();
        for a in actions.iter().filter(|a| a.bytes_before <= max) {
            by_day.entry((&a.project, a.day)).or_default().push(a.bytes_before);
        }
        for sizes in by_day.values() {
            for w in sizes.windows(2) {
                prop_assert!(u128::from(w[0]) + u128::from(w[1]) > u128::from(max), "{:?} under {}", sizes, max);
            }
        }
    }

    #[test]
    fn compact_plans_keep_their_invariants(
        (segments, shuffled) in segments(), now in now(), planner in compact_planner(),
    ) {
        let (actions, inputs) = check_common(&planner, SegmentFormat::Columnar, now, &segments, &shuffled)?;
        let threshold = planner.small_fraction * planner.target_bytes as f64;
        for (a, ins) in actions.iter().zip(&inputs) {
            // (d) Never a merge of one, at least min_inputs, within target.
            prop_assert!(ins.len() >= planner.min_inputs && ins.len() >= 2);
            prop_assert!(a.bytes_before <= planner.target_bytes);
            prop_assert!(ins.iter().all(|s| (s.bytes as f64) < threshold), "not small: {:?}", ins);
            // Output codec: the newest input's (which is the shared one when they all agree).
            let newest = ins.iter().max_by_key(|s| (s.created_at_ms, &s.id)).unwrap();
            prop_assert_eq!(&a.output_codec, &newest.codec);
        }
        // A day whose small segments fit in one target, and are enough, is merged whole.
        let mut small: BTreeMap<(&str, i32), Vec<&SegmentStats>> = BTreeMap::new();
        for s in unique(&segments).into_values() {
            if is_candidate(s, SegmentFormat::Columnar) && (s.bytes as f64) < threshold {
                small.entry((&s.project, s.day)).or_default().push(s);
            }
        }
        for ((project, day), group) in small {
            let total: u128 = group.iter().map(|s| u128::from(s.bytes)).sum();
            let of_day: Vec<_> = actions.iter().filter(|a| a.project == project && a.day == day).collect();
            if group.len() >= planner.min_inputs && total <= u128::from(planner.target_bytes) {
                prop_assert_eq!(of_day.len(), 1);
                prop_assert_eq!(of_day[0].inputs.len(), group.len());
            }
            if group.len() < planner.min_inputs {
                prop_assert!(of_day.is_empty());
            }
        }
    }

    #[test]
    fn recompress_plans_keep_their_invariants(
        (segments, shuffled) in segments(), now in now(), planner in recompress_planner(),
    ) {
        let (actions, inputs) = check_common(&planner, SegmentFormat::Columnar, now, &segments, &shuffled)?;
        let ladder = &planner.ladder;
        let position = |codec: &str| ladder.iter().position(|step| step.codec == codec);
        // The highest step a segment's age reached, if any.
        let reached = |s: &SegmentStats| {
            let age = now.saturating_sub(s.max_time_ms);
            ladder.iter().rposition(|step| age >= step.min_age_ms)
        };
        for (a, ins) in actions.iter().zip(&inputs) {
            prop_assert_eq!(ins.len(), 1);
            let s = ins[0];
            // (f) The output is the highest reached step, above the current position (a codec outside the ladder
            // is below it): never down, never in place.
            let target = reached(s);
            prop_assert!(target.is_some());
            prop_assert_eq!(position(&a.output_codec), target);
            prop_assert!(position(&s.codec).is_none_or(|p| Some(p) < target), "{:?} -> {}", s, a.output_codec);
        }
        // And every segment whose age reached a step above its position is planned.
        let planned: HashSet<&str> = actions.iter().flat_map(|a| &a.inputs).map(String::as_str).collect();
        let due: HashSet<&str> = unique(&segments)
            .into_values()
            .filter(|s| is_candidate(s, SegmentFormat::Columnar))
            .filter(|s| reached(s).is_some_and(|t| position(&s.codec).is_none_or(|p| p < t)))
            .map(|s| s.id.as_str())
            .collect();
        prop_assert_eq!(planned, due);
    }
}
