use super::*;
use crate::testing::{col, seg, DAY_MS};

const NOW: i64 = 100 * DAY_MS;
const GIB_U: u64 = 1 << 30;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn at(id: &str, codec: &str, bytes: u64, age_days: i64, placement: Placement) -> SegmentStats {
    SegmentStats { bytes, max_time_ms: NOW - age_days * DAY_MS, placement, ..col(id, codec) }
}

fn idle_only() -> TieringPolicy {
    TieringPolicy {
        rules: vec![Rule {
            name: "idle".into(),
            min_age_secs: Some(7 * 86_400),
            max_heat: Some(1.0),
            placement: Some(Placement::Cold),
            ..Rule::default()
        }],
        ..TieringPolicy::default()
    }
}

fn kinds(plan: &TieringPlan) -> Vec<(&str, &TieringActionKind, &str)> {
    plan.actions.iter().map(|a| (a.segment.as_str(), &a.kind, a.rule.as_str())).collect()
}

const COLD: TieringActionKind = TieringActionKind::Move { to: Placement::Cold };
const HOT: TieringActionKind = TieringActionKind::Move { to: Placement::Hot };

/// A small catalog billed by hand from the default price table (hot $0.08, cold $0.023 per GiB-month, PUT $0.005
/// and GET $0.0004 per 1000, multipart from 100 MiB in 8 MiB parts, 1 MiB read blocks, no retrieval fee).
#[test]
fn plan_matches_a_hand_computed_bill() {
    let segments = vec![
        // a: 1 GiB hot, idle 10 days: cold. $0.08 -> $0.023 a month, delta -$0.057. Upload: 1024 MiB / 8 MiB =
        // 128 parts + start + completion = 130 PUTs = $0.00065, paid back well within the 30-day horizon.
        at("a", "zstd-19", GIB_U, 10, Placement::Hot),
        // b: 2 GiB cold, read 5 times a day, 5 GiB a day: storage 2 x 0.023 = $0.046; reads 5 GiB/day = 5120 GETs
        // of 1 MiB a day x 30 days x $0.0000004 = $0.06144. $0.10744 a month, no rule moves it.
        SegmentStats { heat: 5.0, heat_bytes: 5.0 * GIB, ..at("b", "zstd-19", 2 * GIB_U, 20, Placement::Cold) },
        // c: 1 GiB hot, one day old: too young for the rule. $0.08.
        at("c", "lz4", GIB_U, 1, Placement::Hot),
        // d: 0.5 GiB of rows, old: rows never go cold. $0.04.
        SegmentStats { bytes: GIB_U / 2, max_time_ms: NOW - 30 * DAY_MS, ..seg("d") },
    ];
    let plan = idle_only().plan(NOW, &segments, &Prices::default(), &Capacity::default());
    assert_eq!(kinds(&plan), vec![("a", &COLD, "idle")]);
    let a = &plan.actions[0];
    assert!(close(a.monthly_cost_delta, -0.057), "{a:?}");
    assert!(close(a.transition_cost, 0.00065), "{a:?}");
    // Before: 0.08 + 0.10744 + 0.08 + 0.04 = 0.30744; after: 0.023 + 0.10744 + 0.08 + 0.04 = 0.25044.
    assert!(close(plan.monthly_cost_before, 0.30744), "{}", plan.monthly_cost_before);
    assert!(close(plan.monthly_cost_after, 0.25044), "{}", plan.monthly_cost_after);
    assert!(close(plan.transition_cost, 0.00065));
    // Break-even: 0.00065 / 0.057 of a 30-day month = 29,557,894.7 ms, rounded up.
    assert_eq!(plan.break_even_ms, Some(29_557_895));
    // Hot: a, c, d (2.5 GiB, $0.20) -> c, d (1.5 GiB, $0.12). Cold: b ($0.10744) -> a, b ($0.13044).
    let hot = &plan.by_tier["hot"];
    assert_eq!((hot.segments, hot.bytes, hot.segments_after, hot.bytes_after), (3, 5 * GIB_U / 2, 2, 3 * GIB_U / 2));
    assert!(close(hot.monthly_before, 0.20) && close(hot.monthly_after, 0.12), "{hot:?}");
    let cold = &plan.by_tier["cold"];
    assert_eq!((cold.segments, cold.bytes, cold.segments_after, cold.bytes_after), (1, 2 * GIB_U, 2, 3 * GIB_U));
    assert!(close(cold.monthly_before, 0.10744) && close(cold.monthly_after, 0.13044), "{cold:?}");
    // By codec: zstd-19 (a, b) $0.18744 -> $0.13044; lz4 (c, d) $0.12 both times.
    let z = &plan.by_codec["zstd-19"];
    assert!(close(z.monthly_before, 0.18744) && close(z.monthly_after, 0.13044), "{z:?}");
    let l = &plan.by_codec["lz4"];
    assert!(close(l.monthly_before, 0.12) && close(l.monthly_after, 0.12), "{l:?}");
    assert!(a.reason.contains("rule \"idle\": hot -> cold"), "{}", a.reason);
}

#[test]
fn a_move_that_does_not_pay_over_the_horizon_is_not_planned() {
    // 64 KiB: saves 64/1048576 x 0.057 = $0.0000035 a month, the upload costs $0.000005: 1.4 months to pay back.
    let small = at("s", "zstd-19", 64 << 10, 10, Placement::Hot);
    let prices = Prices::default();
    assert!(idle_only().plan(NOW, std::slice::from_ref(&small), &prices, &Capacity::default()).actions.is_empty());
    let long = TieringPolicy { horizon_ms: 60 * DAY_MS, ..idle_only() };
    assert_eq!(
        kinds(&long.plan(NOW, std::slice::from_ref(&small), &prices, &Capacity::default())),
        vec![("s", &COLD, "idle")]
    );
    let forced = TieringPolicy { rules: vec![Rule { force: true, ..idle_only().rules[0].clone() }], ..idle_only() };
    let plan = forced.plan(NOW, &[small], &prices, &Capacity::default());
    assert!(plan.actions[0].reason.contains("forced"), "{}", plan.actions[0].reason);
}

#[test]
fn promotions_are_paid_by_cold_reads_and_held_back_by_hysteresis() {
    let policy = TieringPolicy {
        rules: vec![Rule {
            name: "back".into(),
            tier: Some(Placement::Cold),
            placement: Some(Placement::Hot),
            ..Rule::default()
        }],
        cold_max_heat: 1.0,
        hot_min_heat: 10.0,
        ..TieringPolicy::default()
    };
    let prices = Prices::default();
    let cold = |heat: f64, heat_bytes: f64| SegmentStats {
        heat,
        heat_bytes,
        ..at("x", "zstd-19", GIB_U, 20, Placement::Cold)
    };
    // 20 full reads a day: 20480 GETs/day x 30 x $0.0000004 = $0.24576 + $0.023 storage cold vs $0.08 hot.
    let plan = policy.plan(NOW, &[cold(20.0, 20.0 * GIB)], &prices, &Capacity::default());
    assert_eq!(kinds(&plan), vec![("x", &HOT, "back")]);
    assert!(close(plan.actions[0].monthly_cost_delta, 0.08 - 0.26876), "{:?}", plan.actions[0]);
    // The same reads at a heat below hot_min_heat (10/day): hysteresis holds it cold.
    assert!(policy.plan(NOW, &[cold(5.0, 20.0 * GIB)], &prices, &Capacity::default()).actions.is_empty());
    // Often read but in small ranges: 20 GETs a day cost less than the hot disk would.
    assert!(policy.plan(NOW, &[cold(20.0, 20.0 * 4096.0)], &prices, &Capacity::default()).actions.is_empty());
    // The default rules force promotions of data read that often, for read latency.
    let default = TieringPolicy::default().plan(NOW, &[cold(20.0, 20.0 * 4096.0)], &prices, &Capacity::default());
    assert_eq!(kinds(&default), vec![("x", &HOT, "read-often")]);
}

#[test]
fn the_default_idle_rule_is_a_cost_decision_under_a_heat_ceiling() {
    let policy = TieringPolicy::default();
    let ceiling = policy.cold_max_heat;
    let warm = |heat: f64, per_read: u64| SegmentStats {
        heat,
        heat_bytes: heat * per_read as f64,
        ..at("w", "zstd-19", GIB_U, 10, Placement::Hot)
    };
    let plan = |s: SegmentStats, prices: &Prices| policy.plan(NOW, &[s], prices, &Capacity::default());
    let list = Prices::default();
    // 1 GiB, 10 days old, read as often as the ceiling allows, 16 MiB a read: under list prices (no retrieval fee)
    // its cold reads cost ceiling x 16 GETs a day x 30 x $0.0000004, far below the $0.057 a month the cold tier
    // saves: cold. So does the same segment never read.
    for s in [warm(ceiling, 16 << 20), warm(0.0, 0)] {
        let p = plan(s, &list);
        assert_eq!(kinds(&p), vec![("w", &COLD, "idle")]);
        assert!(p.actions[0].monthly_cost_delta < 0.0, "{:?}", p.actions[0]);
    }
    // Read more often than the ceiling: kept hot, for read latency, whatever the cold tier would save.
    assert!(plan(warm(ceiling * 1.01 + 0.01, 16 << 20), &list).actions.is_empty());
    // Under a retrieval fee (S3 Standard-IA's $0.01/GiB), reading it whole that often costs ceiling x $0.30 a
    // month from the cold tier, more than the $0.057 + $0.0125 saved... unless it is hardly read: the cold reads
    // are part of the decision, not only the heat.
    let ia = Prices { cold_gb_month: 0.0125, cold_retrieval_per_gb: 0.01, ..Prices::default() };
    assert!(plan(warm(ceiling, GIB_U), &ia).actions.is_empty());
    assert_eq!(kinds(&plan(warm(ceiling, 16 << 20), &ia)), vec![("w", &COLD, "idle")]);
}

#[test]
fn residency_holds_a_recent_move() {
    let recent = SegmentStats { placed_at_ms: NOW - DAY_MS / 2, ..at("r", "zstd-19", GIB_U, 10, Placement::Hot) };
    let prices = Prices::default();
    assert!(idle_only().plan(NOW, std::slice::from_ref(&recent), &prices, &Capacity::default()).actions.is_empty());
    let later = idle_only().plan(NOW + DAY_MS / 2, &[recent], &prices, &Capacity::default());
    assert_eq!(later.actions.len(), 1);
}

#[test]
fn promotions_stay_within_capacity_and_the_fill_watermark() {
    let policy = TieringPolicy::default();
    let prices = Prices::default();
    let hot_read = |id: &str, heat: f64| SegmentStats { heat, ..at(id, "zstd-19", GIB_U, 20, Placement::Cold) };
    let segments = vec![hot_read("a", 30.0), hot_read("b", 20.0), hot_read("c", 40.0)];
    // 10 GiB disk, 7.5 GiB used; the default watermark 0.9 leaves room for 1.5 GiB: the hottest, c, only.
    let capacity = Capacity { hot_bytes_capacity: 10 * GIB_U, hot_bytes_used: 15 * GIB_U / 2 };
    assert_eq!(kinds(&policy.plan(NOW, &segments, &prices, &capacity)), vec![("c", &HOT, "read-often")]);
    let roomy = Capacity { hot_bytes_capacity: 100 * GIB_U, hot_bytes_used: 0 };
    assert_eq!(policy.plan(NOW, &segments, &prices, &roomy).actions.len(), 3);
}

#[test]
fn a_full_hot_disk_evicts_coldest_first_down_to_its_watermark() {
    let policy = TieringPolicy::default();
    // Three days old, read 2 to 4 times a day: younger than the idle rule's week.
    let warm = |id: &str, heat: f64| SegmentStats { heat, ..at(id, "zstd-19", GIB_U, 3, Placement::Hot) };
    let segments = vec![warm("a", 3.0), warm("b", 2.0), warm("c", 4.0)];
    // 9.5 of 10 GiB used: one 1 GiB eviction brings it to 8.5 <= 9.
    let capacity = Capacity { hot_bytes_capacity: 10 * GIB_U, hot_bytes_used: 19 * GIB_U / 2 };
    let plan = policy.plan(NOW, &segments, &Prices::default(), &capacity);
    assert_eq!(kinds(&plan), vec![("b", &COLD, "hot-disk-full")]);
    assert!(plan.actions[0].reason.contains("95.0% full > 90.0%"), "{}", plan.actions[0].reason);
    assert!(policy.plan(NOW, &segments, &Prices::default(), &Capacity::default()).actions.is_empty());
}

#[test]
fn a_pass_moves_at_most_its_byte_limit_per_direction_but_at_least_one_segment() {
    let policy = TieringPolicy { max_bytes_per_pass: 2 * GIB_U, ..idle_only() };
    let segments: Vec<_> = (0..4).map(|i| at(&format!("s{i}"), "zstd-19", GIB_U, 10 + i, Placement::Hot)).collect();
    let plan = policy.plan(NOW, &segments, &Prices::default(), &Capacity::default());
    // Coldest (all 0) then oldest first: s3, s2.
    assert_eq!(plan.actions.iter().map(|a| a.segment.as_str()).collect::<Vec<_>>(), vec!["s2", "s3"]);
    let big = vec![at("big", "zstd-19", 5 * GIB_U, 10, Placement::Hot)];
    assert_eq!(policy.plan(NOW, &big, &Prices::default(), &Capacity::default()).actions.len(), 1);
}

#[test]
fn one_action_per_segment_rewrites_first() {
    let policy = TieringPolicy {
        rules: vec![
            Rule { name: "pack".into(), compact_target_bytes: Some(8 * GIB_U), ..Rule::default() },
            Rule { name: "squeeze".into(), codec: Some("zstd-19".into()), ..Rule::default() },
            Rule { name: "away".into(), placement: Some(Placement::Cold), force: true, ..Rule::default() },
        ],
        ..TieringPolicy::default()
    };
    let segments = vec![
        at("p1", "lz4", GIB_U, 10, Placement::Hot),
        at("p2", "lz4", GIB_U, 10, Placement::Hot),
        SegmentStats { day: 1, ..at("q", "lz4", GIB_U, 10, Placement::Hot) },
        SegmentStats { day: 2, ..at("r", "zstd-19", GIB_U, 10, Placement::Hot) },
        SegmentStats { day: 3, ..at("cold", "lz4", GIB_U, 10, Placement::Cold) },
    ];
    let plan = policy.plan(NOW, &segments, &Prices::default(), &Capacity::default());
    let pack = TieringActionKind::Compact { target_bytes: 8 * GIB_U };
    let squeeze = TieringActionKind::Recompress { codec: "zstd-19".into() };
    assert_eq!(
        kinds(&plan),
        vec![("p1", &pack, "pack"), ("p2", &pack, "pack"), ("q", &squeeze, "squeeze"), ("r", &COLD, "away")]
    );
    // Applied: p1+p2 become one hot segment "p1", q has its codec, r is cold; all placed now, so nothing moves.
    // The merged segment still has lz4: its codec step was deferred behind the compaction and comes next.
    let (after, _) = apply(NOW, &plan, &segments, &Capacity::default());
    assert_eq!(after.len(), 4);
    let next = policy.plan(NOW, &after, &Prices::default(), &Capacity::default());
    assert_eq!(kinds(&next), vec![("p1", &squeeze, "squeeze")]);
    let (done, _) = apply(NOW, &next, &after, &Capacity::default());
    assert!(policy.plan(NOW, &done, &Prices::default(), &Capacity::default()).actions.is_empty());
}

#[test]
fn json_has_the_documented_shape() {
    let plan = idle_only().plan(
        NOW,
        &[at("a", "zstd-19", GIB_U, 10, Placement::Hot)],
        &Prices::default(),
        &Capacity::default(),
    );
    let json = serde_json::to_value(&plan).unwrap();
    let a = &json["actions"][0];
    assert_eq!(a["segment"], "a");
    assert_eq!(a["kind"], "move");
    assert_eq!(a["to"], "cold");
    assert_eq!(a["rule"], "idle");
    assert!(a["reason"].is_string() && a["monthly_cost_delta"].is_f64());
    for key in ["monthly_cost_before", "monthly_cost_after", "transition_cost", "by_tier", "by_codec", "break_even_ms"]
    {
        assert!(json.get(key).is_some(), "{key} missing: {json}");
    }
    let back: TieringPlan = serde_json::from_value(json).unwrap();
    assert_eq!(back, plan);
}

#[test]
fn invalid_policies_name_the_field() {
    let e = TieringPolicy { hot_min_heat: 1.0, cold_max_heat: 1.0, ..TieringPolicy::default() }.validate().unwrap_err();
    assert!(e.to_string().contains("hot_min_heat"), "{e}");
    let e = TieringPolicy { max_bytes_per_pass: 0, ..TieringPolicy::default() }.validate().unwrap_err();
    assert!(e.to_string().contains("max_bytes_per_pass"), "{e}");
    let e = TieringPolicy { horizon_ms: 0, ..TieringPolicy::default() }.validate().unwrap_err();
    assert!(e.to_string().contains("horizon"), "{e}");
    TieringPolicy::default().validate().unwrap();
}

#[test]
fn an_empty_plan_costs_plus_zero() {
    let plan =
        idle_only().plan(NOW, &[at("c", "lz4", GIB_U, 1, Placement::Hot)], &Prices::default(), &Capacity::default());
    assert!(plan.actions.is_empty());
    assert!(plan.transition_cost == 0.0 && plan.transition_cost.is_sign_positive(), "{}", plan.transition_cost);
}

#[test]
fn compactions_are_the_merges_the_compact_pass_makes() {
    let policy = |min_inputs: usize| TieringPolicy {
        rules: vec![Rule { name: "pack".into(), compact_target_bytes: Some(100), ..Rule::default() }],
        compact_min_inputs: min_inputs,
        compact_small_fraction: 0.5,
        ..TieringPolicy::default()
    };
    // Small means under 50 bytes: a, b, c (90 bytes together, one bin of the 100-byte target); d is not small.
    let segments = vec![
        at("a", "lz4", 30, 10, Placement::Hot),
        at("b", "lz4", 30, 10, Placement::Hot),
        at("c", "lz4", 30, 10, Placement::Hot),
        at("d", "lz4", 80, 10, Placement::Hot),
    ];
    let plan = policy(2).plan(NOW, &segments, &Prices::default(), &Capacity::default());
    let planned: Vec<&str> = plan.actions.iter().map(|a| a.segment.as_str()).collect();
    assert_eq!(planned, ["a", "b", "c"]);
    // What the compact pass would do with the same settings: the same inputs.
    let pass = policy(2).compact_planner(100).plan(NOW, &segments);
    assert_eq!(pass.len(), 1);
    assert_eq!(pass[0].inputs, ["a", "b", "c"]);
    assert!(
        plan.actions[0].reason.starts_with("rule \"pack\": 3 small columnar segments"),
        "{}",
        plan.actions[0].reason
    );
    // With four inputs needed per merge, neither plans anything.
    assert!(policy(4).plan(NOW, &segments, &Prices::default(), &Capacity::default()).actions.is_empty());
    assert!(policy(4).compact_planner(100).plan(NOW, &segments).is_empty());
}
