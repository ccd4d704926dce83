//! Property tests of the retention planner, through the public API only.
//!
//! Segments are generated from the times of their events (so an "expired event" is a real one, not a range), over
//! projects with and without a retention, in every state, with colliding ids now and then. Every plan must: never
//! touch a segment whose events are all inside retention; cover every expired event of a sealed segment by an
//! action, retiring exactly the segments whose events are all expired; not depend on input order; act on a segment
//! at most once; add its totals up.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use tierd_policies::retention::DAY_MS;
use tierd_policies::{
    Placement, Prices, RetentionActionKind, RetentionPlan, RetentionPolicy, RetentionSegment, SegmentState,
};

const NOW: i64 = 400 * DAY_MS;

/// A segment and the times of its events.
#[derive(Debug, Clone)]
struct Generated {
    segment: RetentionSegment,
    times: Vec<i64>,
}

fn generated() -> impl Strategy<Value = Generated> {
    (
        0..60_u32,
        prop::sample::select(vec!["web", "ios", "forever"]),
        prop_oneof![6 => Just(SegmentState::Sealed), 1 => Just(SegmentState::Open), 1 => Just(SegmentState::Retired)],
        // Event times around the cutoffs of 30 and 90 days, often exactly on a day boundary.
        prop::collection::vec(
            prop_oneof![
                (0..=400_i64).prop_map(|d| NOW - d * DAY_MS),
                (0..=400 * 24_i64).prop_map(|h| NOW - h * 3_600_000),
                (-5..=5_i64).prop_map(|ms| NOW - 30 * DAY_MS + ms),
            ],
            1..8,
        ),
        0..=u32::MAX as u64,
        prop_oneof![Just(Placement::Hot), Just(Placement::Cold), Just(Placement::Both)],
        any::<bool>(),
    )
        .prop_map(|(id, project, state, times, bytes, placement, side)| Generated {
            segment: RetentionSegment {
                id: format!("s{id:02}"),
                project: project.to_string(),
                state,
                rows: times.len() as u64,
                bytes,
                min_time_ms: *times.iter().min().unwrap(),
                max_time_ms: *times.iter().max().unwrap(),
                placement,
                side,
            },
            times,
        })
}

fn policy() -> impl Strategy<Value = RetentionPolicy> {
    (prop_oneof![Just(0_u32), Just(30), Just(90)], prop_oneof![Just(0_u32), Just(1), Just(30)]).prop_map(
        |(default_days, web)| RetentionPolicy {
            default_days,
            projects: [("web".to_string(), web), ("forever".to_string(), 0)].into(),
        },
    )
}

fn catalog() -> impl Strategy<Value = (Vec<Generated>, Vec<RetentionSegment>)> {
    prop::collection::vec(generated(), 0..40).prop_flat_map(|v| {
        let segments: Vec<RetentionSegment> = v.iter().map(|g| g.segment.clone()).collect();
        (Just(v), Just(segments).prop_shuffle())
    })
}

fn plan_of(policy: &RetentionPolicy, segments: &[RetentionSegment]) -> RetentionPlan {
    policy.plan(NOW, segments, &Prices::default())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_touches_a_segment_inside_retention(policy in policy(), (generated, _) in catalog()) {
        let segments: Vec<RetentionSegment> = generated.iter().map(|g| g.segment.clone()).collect();
        let plan = plan_of(&policy, &segments);
        let by_id: HashMap<&str, &Generated> = generated.iter().map(|g| (g.segment.id.as_str(), g)).collect();
        for a in &plan.actions {
            let g = by_id[a.segment.as_str()];
            let cutoff = policy.cutoff_ms(&g.segment.project, NOW);
            prop_assert_eq!(Some(a.cutoff_ms), cutoff);
            prop_assert_eq!(g.segment.state, SegmentState::Sealed, "only sealed segments: {:?}", a);
            prop_assert!(g.times.iter().any(|t| *t < a.cutoff_ms), "some event is expired: {:?} {:?}", a, g);
            match a.kind {
                RetentionActionKind::Retire => prop_assert!(g.times.iter().all(|t| *t < a.cutoff_ms)),
                RetentionActionKind::Rewrite => prop_assert!(g.times.iter().any(|t| *t >= a.cutoff_ms)),
            }
            prop_assert!(a.rows_removed_estimate <= a.rows && a.bytes_freed_estimate <= a.bytes);
            prop_assert!(a.rows_removed_estimate >= 1);
            if a.kind == RetentionActionKind::Rewrite {
                prop_assert!(a.rows_removed_estimate < a.rows || a.rows == 1);
            }
        }
    }

    #[test]
    fn every_expired_event_is_covered(policy in policy(), (generated, _) in catalog()) {
        let segments: Vec<RetentionSegment> = generated.iter().map(|g| g.segment.clone()).collect();
        let plan = plan_of(&policy, &segments);
        let mut ids: HashMap<&str, usize> = HashMap::new();
        for g in &generated {
            *ids.entry(g.segment.id.as_str()).or_default() += 1;
        }
        let acted: BTreeMap<&str, RetentionActionKind> =
            plan.actions.iter().map(|a| (a.segment.as_str(), a.kind)).collect();
        for g in &generated {
            let s = &g.segment;
            let Some(cutoff) = policy.cutoff_ms(&s.project, NOW) else {
                prop_assert!(!acted.contains_key(s.id.as_str()), "a project kept forever is never touched");
                continue;
            };
            // Planned: every sealed segment with a unique id. Open segments wait to be sealed, retired ones are
            // gone already, an ambiguous id is left out as every planner does.
            if s.state != SegmentState::Sealed || ids[s.id.as_str()] > 1 {
                continue;
            }
            for t in &g.times {
                if *t < cutoff {
                    prop_assert!(acted.contains_key(s.id.as_str()), "expired event {} of {:?} not covered", t, s);
                }
            }
            let all_expired = g.times.iter().all(|t| *t < cutoff);
            if all_expired {
                prop_assert_eq!(acted.get(s.id.as_str()), Some(&RetentionActionKind::Retire));
            }
        }
    }

    #[test]
    fn the_plan_does_not_depend_on_input_order(policy in policy(), (generated, shuffled) in catalog()) {
        let segments: Vec<RetentionSegment> = generated.iter().map(|g| g.segment.clone()).collect();
        let a = plan_of(&policy, &segments);
        let b = plan_of(&policy, &shuffled);
        prop_assert_eq!(&a, &b);
        // One action per segment at most, and totals that add up.
        let mut ids: Vec<&str> = a.actions.iter().map(|x| x.segment.as_str()).collect();
        ids.dedup();
        prop_assert_eq!(ids.len(), a.actions.len());
        let retired = a.actions.iter().filter(|x| x.kind == RetentionActionKind::Retire).count() as u64;
        prop_assert_eq!((a.segments_retired, a.segments_rewritten), (retired, a.actions.len() as u64 - retired));
        let bytes: u64 = a.actions.iter().map(|x| x.bytes_freed_estimate).sum();
        prop_assert_eq!(a.bytes_freed_estimate, bytes);
        let rows: u64 = a.actions.iter().map(|x| x.rows_removed_estimate).sum();
        prop_assert_eq!(a.rows_removed_estimate, rows);
    }

    /// A plan carried out (retired segments gone, rewritten ones holding only the kept events) and planned again
    /// at the same time has nothing left to do.
    #[test]
    fn a_plan_carried_out_leaves_nothing_to_do(policy in policy(), (generated, _) in catalog()) {
        let segments: Vec<RetentionSegment> = generated.iter().map(|g| g.segment.clone()).collect();
        let plan = plan_of(&policy, &segments);
        let acted: BTreeMap<&str, RetentionActionKind> =
            plan.actions.iter().map(|a| (a.segment.as_str(), a.kind)).collect();
        let mut after = Vec::new();
        for g in &generated {
            match acted.get(g.segment.id.as_str()) {
                Some(RetentionActionKind::Retire) => {}
                Some(RetentionActionKind::Rewrite) => {
                    let cutoff = policy.cutoff_ms(&g.segment.project, NOW).unwrap();
                    let kept: Vec<i64> = g.times.iter().copied().filter(|t| *t >= cutoff).collect();
                    let mut s = g.segment.clone();
                    s.rows = kept.len() as u64;
                    s.min_time_ms = *kept.iter().min().unwrap();
                    s.max_time_ms = *kept.iter().max().unwrap();
                    after.push(s);
                }
                None => after.push(g.segment.clone()),
            }
        }
        let again = plan_of(&policy, &after);
        prop_assert!(again.actions.is_empty(), "{:?}", again.actions);
    }
}
