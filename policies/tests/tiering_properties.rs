//! Property tests of the tiering planner, through the public API only.
//!
//! For arbitrary catalogs (every state, format and placement, duplicated ids, any heat, residency and age) and
//! rule sets shaped like the default one with arbitrary thresholds (plus project-scoped extra rules, codec and
//! compaction prescriptions), every plan must: not depend on input order; give no segment two actions; act only on
//! sealed columnar segments with a unique id; keep residency, hysteresis (unless forced), the cost test (unless
//! forced), the hot capacity and the per-direction byte limit. Applied and re-planned at the same time, a plan
//! leaves nothing to do, but for what it deferred (one action per segment) or what only the space it freed allows.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use tierd_policies::cost::MONTH_MS;
use tierd_policies::tiering::{apply, is_to_hot};
use tierd_policies::{
    Capacity, Placement, Prices, Rule, SegmentFormat, SegmentState, SegmentStats, TieringActionKind, TieringPlan,
    TieringPolicy,
};

const DAY_MS: i64 = 86_400_000;
const MIB: u64 = 1 << 20;
const NOW: i64 = 1_000 * DAY_MS;
const PLACEMENTS: [Placement; 3] = [Placement::Hot, Placement::Cold, Placement::Both];

fn segment() -> impl Strategy<Value = SegmentStats> {
    (
        (0..60_u32, prop::sample::select(vec!["web-a", "web-b", "api"]), 0..3_i32),
        prop_oneof![6 => Just(SegmentState::Sealed), 1 => Just(SegmentState::Open), 1 => Just(SegmentState::Retired)],
        prop_oneof![4 => Just(SegmentFormat::Columnar), 1 => Just(SegmentFormat::Rows)],
        prop::sample::select(vec!["lz4", "zstd-3", "zstd-19"]),
        prop_oneof![1 => 0..=4096_u64, 3 => 0..=(256 * MIB)],
        (0..40_i64, 0..40_i64, 0..3_usize),
        prop_oneof![2 => Just(0.0), 3 => 0.0..60.0_f64, 1 => Just(f64::NAN)],
        0.0..(64.0 * MIB as f64),
    )
        .prop_map(|((id, project, day), state, format, codec, bytes, (age_h, placed_h, p), heat, per_read)| {
            SegmentStats {
                id: format!("s{id:02}"),
                project: project.into(),
                day,
                state,
                format,
                codec: codec.into(),
                rows: 10,
                bytes,
                created_at_ms: NOW - age_h * 6 * 3_600_000,
                max_time_ms: NOW - age_h * 6 * 3_600_000,
                placement: PLACEMENTS[p],
                placed_at_ms: NOW - placed_h * 3_600_000,
                heat,
                heat_bytes: if heat.is_finite() { heat * per_read } else { 0.0 },
            }
        })
}

/// The default rules' shape with arbitrary thresholds, an optional project rule, optional rewrite rules; the
/// fill-watermark rule stays last, as in the default set. The idle rule has a heat ceiling of its own or, as in
/// the default set, none (the planner's cost test and `cold_max_heat` decide).
fn policy() -> impl Strategy<Value = TieringPolicy> {
    (
        (0.0..5.0_f64, 0.1..30.0_f64, any::<bool>()),
        (0..4_u64, 0..10_u64),
        (any::<bool>(), prop::sample::select(PLACEMENTS.to_vec())),
        (any::<bool>(), any::<bool>(), 0.3..0.99_f64),
        (1..90_i64, 1..(3 * DAY_MS), 1..(512 * MIB)),
        any::<bool>(),
    )
        .prop_map(
            |(
                (cold_max, gap, force_back),
                (fresh_days, idle_days),
                (extra, extra_to),
                (codec, compact, fill),
                (horizon_days, residency, max_bytes),
                idle_heat_ceiling,
            )| {
                let hot_min = cold_max + gap;
                let mut rules = vec![
                    Rule {
                        name: "back".into(),
                        tier: Some(Placement::Cold),
                        min_heat: Some(hot_min),
                        placement: Some(Placement::Hot),
                        force: force_back,
                        ..Rule::default()
                    },
                    Rule {
                        name: "fresh".into(),
                        max_age_secs: Some(fresh_days * 86_400),
                        placement: Some(Placement::Hot),
                        ..Rule::default()
                    },
                ];
                if extra {
                    rules.push(Rule {
                        name: "project".into(),
                        project: Some("web-*".into()),
                        max_heat: Some(cold_max),
                        placement: Some(extra_to),
                        ..Rule::default()
                    });
                }
                rules.push(Rule {
                    name: "idle".into(),
                    min_age_secs: Some(idle_days * 86_400),
                    max_heat: idle_heat_ceiling.then_some(cold_max),
                    placement: Some(Placement::Cold),
                    ..Rule::default()
                });
                if codec {
                    rules.push(Rule {
                        name: "squeeze".into(),
                        min_age_secs: Some(86_400),
                        codec: Some("zstd-19".into()),
                        ..Rule::default()
                    });
                }
                if compact {
                    rules.push(Rule { name: "pack".into(), compact_target_bytes: Some(64 * MIB), ..Rule::default() });
                }
                rules.push(Rule {
                    name: "full".into(),
                    tier: Some(Placement::Hot),
                    hot_fill_above: Some(fill),
                    placement: Some(Placement::Cold),
                    force: true,
                    ..Rule::default()
                });
                TieringPolicy {
                    rules,
                    horizon_ms: horizon_days * DAY_MS,
                    min_residency_ms: residency,
                    cold_max_heat: cold_max,
                    hot_min_heat: hot_min,
                    max_bytes_per_pass: max_bytes,
                    ..TieringPolicy::default()
                }
            },
        )
}

fn capacity() -> impl Strategy<Value = Capacity> {
    prop_oneof![
        1 => Just(Capacity::default()),
        3 => (1..(4096 * MIB), 0.0..1.2_f64).prop_map(|(cap, fill)| Capacity {
            hot_bytes_capacity: cap,
            hot_bytes_used: (cap as f64 * fill) as u64
        }),
    ]
}

fn forced(policy: &TieringPolicy, rule: &str) -> bool {
    policy.rules.iter().any(|r| r.name == rule && r.force)
}

fn check_plan(
    policy: &TieringPolicy,
    segments: &[SegmentStats],
    capacity: &Capacity,
    plan: &TieringPlan,
) -> Result<(), TestCaseError> {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for s in segments {
        *ids.entry(s.id.as_str()).or_default() += 1;
    }
    let mut acted = HashSet::new();
    let (mut to_hot, mut to_cold) = (Vec::new(), Vec::new());
    let mut added_hot = 0u64;
    for a in &plan.actions {
        prop_assert!(acted.insert(a.segment.clone()), "{} has two actions", a.segment);
        prop_assert_eq!(ids.get(a.segment.as_str()).copied(), Some(1), "{} is not a unique id", a.segment);
        let s = segments.iter().find(|s| s.id == a.segment).unwrap();
        prop_assert_eq!(s.state, SegmentState::Sealed);
        prop_assert_eq!(s.format, SegmentFormat::Columnar);
        match &a.kind {
            TieringActionKind::Move { to } => {
                prop_assert_ne!(*to, s.placement);
                prop_assert!(NOW - s.placed_at_ms >= policy.min_residency_ms, "residency broken: {:?}", a);
                if !forced(policy, &a.rule) {
                    prop_assert!(policy.keeps_hysteresis(s, *to), "hysteresis broken: {:?} {:?}", a, s);
                    let saving = -a.monthly_cost_delta * policy.horizon_ms as f64 / MONTH_MS as f64;
                    prop_assert!(a.monthly_cost_delta < 0.0 && saving > a.transition_cost, "does not pay: {:?}", a);
                }
                if s.placement == Placement::Cold {
                    added_hot += s.bytes;
                }
                if is_to_hot(s.placement, *to) {
                    to_hot.push(s.bytes)
                } else {
                    to_cold.push(s.bytes)
                }
            }
            TieringActionKind::Recompress { .. } | TieringActionKind::Compact { .. } => {
                prop_assert_ne!(s.placement, Placement::Cold, "rewrites read a hot copy");
            }
        }
    }
    if let Some(limit) = policy.promotion_limit(capacity) {
        prop_assert!(added_hot == 0 || capacity.hot_bytes_used + added_hot <= limit, "capacity exceeded");
        prop_assert!(limit <= capacity.hot_bytes_capacity);
    }
    for moved in [to_hot, to_cold] {
        prop_assert!(moved.len() <= 1 || moved.iter().sum::<u64>() <= policy.max_bytes_per_pass);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn plans_keep_their_invariants_whatever_the_input_order(
        segments in prop::collection::vec(segment(), 0..40).prop_shuffle(),
        policy in policy(),
        capacity in capacity(),
    ) {
        prop_assert!(policy.validate().is_ok(), "{:?}", policy.validate());
        let prices = Prices::default();
        let plan = policy.plan(NOW, &segments, &prices, &capacity);
        let mut reversed = segments.clone();
        reversed.reverse();
        let again = policy.plan(NOW, &reversed, &prices, &capacity);
        // NaN heat has no equality: compare the JSON text.
        prop_assert_eq!(serde_json::to_string(&plan).unwrap(), serde_json::to_string(&again).unwrap());
        check_plan(&policy, &segments, &capacity, &plan)?;
        let delta: f64 = plan.actions.iter().map(|a| a.monthly_cost_delta).sum();
        prop_assert!((plan.monthly_cost_before + delta - plan.monthly_cost_after).abs() < 1e-9);
    }

    /// Applied and re-planned at the same time: nothing more to do, except an action deferred behind another action
    /// on the same segment (one action per segment per plan), or a move onto the hot disk that fits only in the
    /// space the first plan freed.
    #[test]
    fn a_plan_applied_leaves_nothing_to_do(
        segments in prop::collection::vec(segment(), 0..40),
        policy in policy(),
        capacity in capacity(),
    ) {
        let policy = TieringPolicy { max_bytes_per_pass: u64::MAX, ..policy };
        let prices = Prices::default();
        let first = policy.plan(NOW, &segments, &prices, &capacity);
        let (after, cap_after) = apply(NOW, &first, &segments, &capacity);
        let second = policy.plan(NOW, &after, &prices, &cap_after);
        let first_kind: HashMap<&str, &TieringActionKind> = first.actions.iter().map(|a| (a.segment.as_str(), &a.kind)).collect();
        let days: HashSet<(&str, i32)> = first.actions.iter().map(|a| (a.project.as_str(), a.day)).collect();
        // The first plan took a hot copy away (which it does not count as room for its own promotions).
        let freed = first.actions.iter().any(|a| {
            let from = segments.iter().find(|s| s.id == a.segment).map(|s| s.placement);
            a.kind == TieringActionKind::Move { to: Placement::Cold } && from != Some(Placement::Cold)
        });
        for a in &second.actions {
            let s = after.iter().find(|s| s.id == a.segment).unwrap();
            let promotion = matches!(a.kind, TieringActionKind::Move { .. }) && s.placement == Placement::Cold;
            let is_move = |k: &TieringActionKind| matches!(k, TieringActionKind::Move { .. });
            // Deferred: a rewrite after a rewrite (compacted, now recompressed) or after a promotion (rewrites need
            // a hot copy). Never a second move: the residency holds it.
            // Or a compaction of a (project, day) where the first plan changed a segment (which joins the group).
            let deferred = first_kind.get(a.segment.as_str()).is_some_and(|k| !(is_move(k) && is_move(&a.kind)))
                || (matches!(a.kind, TieringActionKind::Compact { .. }) && days.contains(&(a.project.as_str(), a.day)));
            prop_assert!(
                deferred || (freed && promotion),
                "re-plan acts again on {:?}\nfirst: {:?}", a, first.actions
            );
        }
    }

    /// Zero heat and past every age threshold and the residency: a hot columnar segment goes cold when the move
    /// pays, unless a rule keeps it (the project rule prescribing hot or both).
    #[test]
    fn an_idle_old_segment_is_never_kept_hot_without_a_rule(
        segment in segment(),
        policy in policy(),
    ) {
        let policy = TieringPolicy { max_bytes_per_pass: u64::MAX, ..policy };
        let s = SegmentStats {
            state: SegmentState::Sealed,
            format: SegmentFormat::Columnar,
            placement: Placement::Hot,
            heat: 0.0,
            heat_bytes: 0.0,
            max_time_ms: NOW - 400 * DAY_MS,
            placed_at_ms: NOW - 400 * DAY_MS,
            bytes: segment.bytes.max(64 * MIB),
            ..segment
        };
        let kept_by_rule = policy.rules.iter().any(|r| r.name == "project" && r.placement != Some(Placement::Cold) && s.project.starts_with("web-"));
        let codec_step = policy.rules.iter().any(|r| r.codec.as_deref().is_some_and(|c| c != s.codec));
        let plan = policy.plan(NOW, std::slice::from_ref(&s), &Prices::default(), &Capacity::default());
        if !kept_by_rule && !codec_step {
            prop_assert_eq!(plan.actions.len(), 1, "{:?}", s);
            prop_assert_eq!(&plan.actions[0].kind, &TieringActionKind::Move { to: Placement::Cold });
        }
    }
}
