use proptest::prelude::*;

use super::accesslog;
use super::*;
use crate::recompress::{LadderStep, RecompressPlanner};
use crate::segment::Placement;
use crate::tiering::TieringPolicy;

const DAY: i64 = workload::DAY_MS;

fn small(days: u32) -> SimConfig {
    SimConfig {
        workload: WorkloadParams {
            days,
            history_days: 0,
            projects: 5,
            daily_bytes: 1 << 30,
            reads_per_day: 200,
            ..WorkloadParams::default()
        },
        ..SimConfig::default()
    }
}

fn tierd() -> Scenario {
    Scenario::Tierd(Box::new(TierdPolicy {
        recompress: RecompressPlanner {
            ladder: vec![
                LadderStep { min_age_ms: DAY, codec: "zstd-3".into() },
                LadderStep { min_age_ms: 6 * DAY, codec: "zstd-19".into() },
            ],
        },
        tiering: TieringPolicy::default(),
        hot_capacity_bytes: 0,
    }))
}

fn all(config: &SimConfig) -> Vec<Scenario> {
    vec![Scenario::AllHot, Scenario::AgeOnly(config.age_only.clone()), tierd()]
}

fn report(config: &SimConfig, seed: u64) -> Report {
    let w = generate(&config.workload, seed).unwrap();
    simulate(&w, &all(config), config, &Prices::default()).unwrap()
}

#[test]
fn same_seed_same_report_other_seed_other_workload() {
    let c = small(12);
    assert_eq!(report(&c, 7), report(&c, 7));
    assert_eq!(generate(&c.workload, 7).unwrap(), generate(&c.workload, 7).unwrap());
    assert_ne!(generate(&c.workload, 7).unwrap(), generate(&c.workload, 8).unwrap());
}

#[test]
fn all_hot_never_moves_or_rewrites() {
    let c = small(12);
    let r = report(&c, 1);
    let hot = &r.scenarios[0];
    assert_eq!(hot.name, "all-hot");
    assert_eq!((hot.bytes_moved, hot.bytes_rewritten, hot.requests, hot.moves), (0, 0, 0, 0));
    assert_eq!((hot.end_bytes_cold, hot.end_bytes_cold_infrequent, hot.segment_reads_cold), (0, 0, 0));
    assert_eq!(hot.transition_cost + hot.read_cost, 0.0);
    // Everything ingested is on the hot disk, in the ingest codec.
    let w = generate(&c.workload, 1).unwrap();
    assert_eq!(hot.end_bytes_hot, w.writes.iter().map(|w| w.bytes).sum::<u64>());
}

#[test]
fn tierd_moves_and_recompresses_old_data() {
    let r = report(&small(12), 1);
    let (hot, tierd) = (&r.scenarios[0], &r.scenarios[2]);
    assert!(tierd.recompressions > 0 && tierd.moves > 0 && tierd.bytes_moved > 0);
    assert!(tierd.end_bytes_cold > 0);
    // Recompressed data is smaller than the ingest codec's.
    assert!(tierd.end_bytes_hot + tierd.end_bytes_cold < hot.end_bytes_hot);
}

#[test]
fn without_reads_age_only_colds_everything_after_30_days_then_colder_at_90() {
    let c = SimConfig {
        workload: WorkloadParams { reads_per_day: 0, report_reads: 0, incidents: 0, ..small(40).workload },
        ..small(40)
    };
    let mut w = generate(&c.workload, 3).unwrap();
    assert!(w.reads.is_empty());
    let age_only = [Scenario::AgeOnly(c.age_only.clone())];
    // At 40 days, the days sealed at least 30 days ago (the first 10) are cold, the rest hot.
    let r = simulate(&w, &age_only, &c, &Prices::default()).unwrap();
    let s = &r.scenarios[0];
    let sealed_30_days_ago: u64 = w.writes.iter().filter(|x| x.time_ms + 30 * DAY <= w.end_ms).map(|x| x.bytes).sum();
    assert!(sealed_30_days_ago > 0);
    assert_eq!(s.end_bytes_cold, sealed_30_days_ago);
    assert_eq!(s.end_bytes_hot + s.end_bytes_cold, w.writes.iter().map(|x| x.bytes).sum::<u64>());
    // Run on to 40 days after the last seal: all cold; to 90 days after the first: the first day colder.
    w.end_ms = w.writes.last().unwrap().time_ms + 40 * DAY;
    let s = simulate(&w, &age_only, &c, &Prices::default()).unwrap().scenarios.remove(0);
    assert_eq!(s.end_bytes_hot, 0);
    w.end_ms = w.writes[0].time_ms + 90 * DAY;
    let s = simulate(&w, &age_only, &c, &Prices::default()).unwrap().scenarios.remove(0);
    assert_eq!((s.end_bytes_hot, s.end_bytes_cold_infrequent > 0), (0, true));
}

#[test]
fn age_only_brings_a_read_cold_segment_back_hot() {
    let c = small(1);
    let write = Write { time_ms: DAY, project: "web".into(), day: 0, bytes: 100 << 20 };
    let read = |t: i64| Read { time_ms: t, project: "web".into(), day: 0, bytes: 1 << 20 };
    let w = Workload {
        start_ms: 0,
        measure_from_ms: 0,
        end_ms: 40 * DAY,
        writes: vec![write],
        reads: vec![read(35 * DAY)],
    };
    let s = simulate(&w, &[Scenario::AgeOnly(c.age_only.clone())], &c, &Prices::default()).unwrap().scenarios.remove(0);
    // Cold at day 31, read at 35 (from the cold tier), back hot, still hot at 40.
    assert_eq!((s.moves, s.segment_reads_cold, s.end_bytes_hot), (2, 1, 100 << 20));
    assert_eq!(s.bytes_moved, 2 * (100 << 20));
    assert!(s.p99_read_ms >= c.latency.cold_first_byte_ms);
}

#[test]
fn history_is_run_through_but_left_out_of_the_figures() {
    let c = SimConfig {
        workload: WorkloadParams {
            history_days: 40,
            reads_per_day: 0,
            report_reads: 0,
            incidents: 0,
            ..small(5).workload
        },
        ..small(5)
    };
    let w = generate(&c.workload, 4).unwrap();
    assert_eq!((w.measure_from_ms - w.start_ms, w.end_ms - w.measure_from_ms), (40 * DAY, 5 * DAY));
    assert_eq!(w.measure_from_ms, i64::from(c.workload.start_day) * DAY, "start_day is the first measured day");
    let r = simulate(&w, &all(&c), &c, &Prices::default()).unwrap();
    assert_eq!((r.days, r.history_days), (5.0, 40.0));
    // all-hot pays, over the window only, for every byte held during it: history from the window's start, the
    // window's days from their seal (at a midnight, a tick boundary).
    let prices = Prices::default();
    let expected: f64 = w
        .writes
        .iter()
        .filter(|x| x.time_ms < w.end_ms)
        .map(|x| {
            let held = w.end_ms - x.time_ms.max(w.measure_from_ms);
            prices.storage_monthly(x.bytes, crate::cost::StorageClass::Hot) * held as f64 / crate::cost::MONTH_MS as f64
        })
        .sum();
    let hot = &r.scenarios[0];
    assert!((hot.storage_cost - expected).abs() < 1e-9 * expected, "{} vs {expected}", hot.storage_cost);
    // Without reads, age-only has sent the history's first days cold (at least 30 days idle), and no move of the
    // history counts: the days sealed more than 30 days before the window were moved before it.
    let age = &r.scenarios[1];
    assert!(age.end_bytes_cold > 0 && age.end_bytes_hot > 0, "{age:?}");
    let moved_in_window: u64 = w
        .writes
        .iter()
        .filter(|x| x.time_ms + 30 * DAY >= w.measure_from_ms && x.time_ms + 30 * DAY <= w.end_ms)
        .map(|x| x.bytes)
        .sum();
    assert!(age.bytes_moved <= moved_in_window && age.bytes_moved < age.end_bytes_cold, "{age:?}");
}

#[test]
fn age_only_climbs_the_ladder_only_when_given_one() {
    let c = small(12);
    let w = generate(&c.workload, 2).unwrap();
    let ladder = match tierd() {
        Scenario::Tierd(p) => p.recompress,
        _ => unreachable!(),
    };
    let with = AgeOnly { ladder: Some(ladder), ..c.age_only.clone() };
    let r = simulate(
        &w,
        &[Scenario::AllHot, Scenario::AgeOnly(c.age_only.clone()), Scenario::AgeOnly(with)],
        &c,
        &Prices::default(),
    )
    .unwrap();
    let (hot, plain, laddered) = (&r.scenarios[0], &r.scenarios[1], &r.scenarios[2]);
    // In 12 days nothing is 30 days idle: without a ladder age-only is all-hot; with one, smaller, never cold.
    assert_eq!(
        (plain.recompressions, plain.end_bytes_hot, plain.monthly_cost),
        (0, hot.end_bytes_hot, hot.monthly_cost)
    );
    assert!(laddered.recompressions > 0 && laddered.end_bytes_hot < hot.end_bytes_hot, "{laddered:?}");
    assert_eq!((laddered.moves, laddered.end_bytes_cold), (0, 0));
}

#[test]
fn access_log_round_trip_and_errors_name_the_line() {
    let c = small(5);
    let w = generate(&c.workload, 11).unwrap();
    let text = accesslog::format(&w);
    let back = accesslog::parse(&text).unwrap();
    assert_eq!((back.writes, back.reads), (w.writes, w.reads));
    assert_eq!(accesslog::parse_day("2026-11-30"), Some(20_787));
    assert_eq!(accesslog::format_day(20_787), "2026-11-30");
    assert_eq!(accesslog::parse_day("2026-02-30"), None);

    let ok = r#"{"time_ms":86400000,"project":"web","day":"1970-01-01","bytes":10}"#;
    let e = accesslog::parse(&format!(
        "{ok}\n\n{{\"time_ms\":1,\"project\":\"web\",\"day\":\"1970-13-01\",\"bytes\":1}}\n"
    ));
    assert_eq!(e.unwrap_err().line, 3);
    let e = accesslog::parse(&format!("# comment\n{ok}\nnot json\n")).unwrap_err();
    assert!(e.line == 3 && e.to_string().contains("line 3"), "{e}");
    let e = accesslog::parse(&format!(
        "{ok}\n{}",
        r#"{"time_ms":5,"project":"web","day":"1970-01-02","bytes":1,"op":"write"}"#
    ));
    assert_eq!(e.unwrap_err().line, 2);
    // A log of reads alone: the day is taken to be as big as its largest read.
    let only = accesslog::parse(ok).unwrap();
    assert_eq!(only.writes, vec![Write { time_ms: 86_400_000, project: "web".into(), day: 0, bytes: 10 }]);
    assert_eq!((only.start_ms, only.end_ms), (DAY, 2 * DAY));
}

#[test]
fn unknown_codec_and_bad_latency_are_refused() {
    let c = SimConfig { ingest_codec: "snappy".into(), ..small(2) };
    let w = generate(&c.workload, 1).unwrap();
    assert!(simulate(&w, &[Scenario::AllHot], &c, &Prices::default()).unwrap_err().to_string().contains("snappy"));
}

#[test]
fn heat_reads_as_a_rate_per_day() {
    let mut h = state::Decayed::default();
    for i in 0..2000 {
        h.add(i * DAY / 10, 1.0, DAY);
    }
    let rate = h.at(2000 * DAY / 10, DAY);
    assert!((rate - 10.0).abs() < 0.5, "{rate}");
    assert!((h.at(2000 * DAY / 10 + DAY, DAY) - rate / 2.0).abs() < 1e-9);
}

#[test]
fn cache_is_bounded_and_lru() {
    let mut cache = state::Cache::new(100);
    assert!(!cache.read((0, 0), 60));
    assert!(cache.read((0, 0), 50));
    assert!(!cache.read((1, 0), 60)); // evicts 0
    assert!(!cache.read((0, 0), 10));
    assert!(!cache.read((2, 0), 200)); // larger than the bound: never cached
    assert!(!cache.read((2, 0), 200));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn costs_are_non_negative_and_placement_consistent(seed in 0u64..1000, days in 1u32..15, reads in 0u32..300) {
        let c = SimConfig { workload: WorkloadParams { reads_per_day: reads, ..small(days).workload }, ..small(days) };
        let r = report(&c, seed);
        let ingested: u64 = generate(&c.workload, seed).unwrap().writes.iter().map(|w| w.bytes).sum();
        for s in &r.scenarios {
            for v in [s.monthly_cost, s.total_cost, s.storage_cost, s.transition_cost, s.read_cost, s.p50_read_ms, s.p99_read_ms] {
                prop_assert!(v.is_finite() && v >= 0.0, "{} {:?}", s.name, s);
            }
            prop_assert!(s.p50_read_ms <= s.p99_read_ms);
            prop_assert!((s.total_cost - s.storage_cost - s.transition_cost - s.read_cost).abs() < 1e-9);
            // No byte is lost and none is invented beyond the ingest size (rewrites only shrink, Both only adds
            // a copy).
            prop_assert!(s.end_bytes_hot + s.end_bytes_cold + s.end_bytes_cold_infrequent >= ingested / 2);
            prop_assert!(s.end_bytes_hot.max(s.end_bytes_cold + s.end_bytes_cold_infrequent) <= ingested);
        }
        prop_assert_eq!(r.scenarios[0].moves, 0);
        let _ = Placement::Hot;
    }
}

#[test]
fn a_workload_too_big_for_memory_is_refused_naming_the_key() {
    let mut c = small(30);
    c.workload.days = 1_000_000;
    c.validate().unwrap();
    let e = c.check_generated_size().unwrap_err().to_string();
    assert!(e.contains("max_workload_bytes"), "{e}");
    let mut c = small(30);
    c.workload.projects = 10_000_000;
    c.workload.reads_per_day = 0;
    c.workload.report_reads = 0;
    assert!(c.check_generated_size().unwrap_err().to_string().contains("segments"));
    small(30).check_generated_size().unwrap();
    SimConfig::default().check_generated_size().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// The memory bound is checked on an estimate made before generating: it must never be below what is generated.
    #[test]
    fn the_size_estimate_bounds_what_is_generated(
        days in 1u32..40, history in 0u32..40, projects in 1u32..6, reads_per_day in 0u32..300,
        report_reads in 0u32..4, incidents in 0u32..4, incident_reads in 0u32..100, seed in 0u64..1000,
    ) {
        let params = WorkloadParams {
            days, history_days: history, projects, reads_per_day, report_reads, incidents, incident_reads,
            daily_bytes: 1 << 30,
            ..WorkloadParams::default()
        };
        let w = generate(&params, seed).unwrap();
        let (reads, segments) = params.estimated_size();
        prop_assert!(w.reads.len() as u64 <= reads, "{} reads > estimate {reads}", w.reads.len());
        prop_assert!(w.writes.len() as u64 <= segments, "{} segments > estimate {segments}", w.writes.len());
    }
}
