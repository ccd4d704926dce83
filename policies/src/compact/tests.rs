use super::*;
use crate::segment::SegmentState;
use crate::testing::{col, inputs, seg, DAY, MIB};
use crate::PolicyError;

/// Small means < 50 MiB; a merge takes at most 100 MiB.
fn planner() -> CompactPlanner {
    CompactPlanner { target_bytes: 100 * MIB, min_inputs: 2, small_fraction: 0.5 }
}

fn small(id: &str, mib: u64) -> SegmentStats {
    SegmentStats { bytes: mib * MIB, ..col(id, "zstd-3") }
}

#[test]
fn merges_small_sealed_columnar_segments_of_one_day() {
    let segments = [
        small("a", 10),
        small("b", 20),
        SegmentStats { state: SegmentState::Open, ..small("open", 1) },
        SegmentStats { state: SegmentState::Retired, ..small("retired", 1) },
        SegmentStats { bytes: MIB, ..seg("rows") },
    ];
    let actions = planner().plan(0, &segments);
    assert_eq!(inputs(&actions), [["a", "b"]]);
    let a = &actions[0];
    assert_eq!((a.kind, a.project.as_str(), a.day, a.bytes_before), (RewriteKind::Compact, "web", DAY, 30 * MIB));
    assert_eq!(a.output_codec, "zstd-3");
}

#[test]
fn only_small_segments_are_merged() {
    let segments = [
        small("a", 10),
        SegmentStats { bytes: 50 * MIB - 1, ..col("just-small", "zstd-3") },
        SegmentStats { bytes: 50 * MIB, ..col("not-small", "zstd-3") },
    ];
    assert_eq!(inputs(&planner().plan(0, &segments)), [["a", "just-small"]]);
}

#[test]
fn never_merges_a_lone_segment() {
    assert_eq!(planner().plan(0, &[small("a", 1)]), []);
    // Two small segments that do not fit together: two bins of one, nothing planned.
    let p = CompactPlanner { small_fraction: 1.0, ..planner() };
    assert_eq!(p.plan(0, &[small("a", 60), small("b", 60)]), []);
    // An unvalidated min_inputs of 0 or 1 still never plans a merge of one.
    for min_inputs in [0, 1] {
        assert_eq!(CompactPlanner { min_inputs, ..planner() }.plan(0, &[small("a", 1)]), []);
    }
}

#[test]
fn respects_min_inputs() {
    let p = CompactPlanner { min_inputs: 3, ..planner() };
    assert_eq!(p.plan(0, &[small("a", 1), small("b", 1)]), []);
    assert_eq!(inputs(&p.plan(0, &[small("a", 1), small("b", 1), small("c", 1)])), [["a", "b", "c"]]);
}

#[test]
fn does_not_mix_projects_or_days() {
    let segments = [
        small("web-1", 1),
        SegmentStats { day: DAY - 30, ..small("web-old", 1) },
        SegmentStats { project: "app".into(), ..small("app-1", 1) },
        small("web-2", 1),
    ];
    assert_eq!(inputs(&planner().plan(0, &segments)), [["web-1", "web-2"]]);
}

#[test]
fn late_events_for_an_old_day_join_its_segments() {
    let old_day = DAY - 400;
    let segments = [
        SegmentStats { day: old_day, codec: "zstd-19".into(), created_at_ms: 1_000, ..small("old", 30) },
        SegmentStats { day: old_day, created_at_ms: 9_000, ..small("late", 1) },
    ];
    let actions = planner().plan(i64::MAX, &segments);
    assert_eq!(inputs(&actions), [["late", "old"]]);
    // Mixed codecs: the newest input's codec.
    assert_eq!(actions[0].output_codec, "zstd-3");
    assert_eq!(
        actions[0].reason,
        "2 small columnar segments of 2024-11-27 (31.0 MiB; each < 50.0 MiB = 0.5 x target_bytes 100.0 MiB) \
         -> one zstd-3 segment (mixed codecs zstd-19, zstd-3: the newest input's)"
    );
}

#[test]
fn newest_input_ties_break_by_larger_id() {
    // Sizes put "b" first in packing order, so the tie-break cannot come from that order by accident.
    let segments = [
        SegmentStats { created_at_ms: 5, codec: "lz4".into(), ..small("b", 3) },
        SegmentStats { created_at_ms: 5, codec: "zstd-1".into(), ..small("a", 2) },
        SegmentStats { created_at_ms: 4, codec: "zstd-9".into(), ..small("c", 1) },
    ];
    assert_eq!(planner().plan(0, &segments)[0].output_codec, "lz4");
}

#[test]
fn packs_first_fit_decreasing_within_target() {
    // 45 + 40 + 15 = 100 fits the first bin exactly; 35 + 30 + 20 + 10 = 95 the second; 5 joins the second.
    let segments: Vec<_> = [("a", 45), ("b", 40), ("c", 35), ("d", 30), ("e", 20), ("f", 15), ("g", 10), ("h", 5)]
        .map(|(id, mib)| small(id, mib))
        .into();
    let actions = planner().plan(0, &segments);
    assert_eq!(inputs(&actions), [vec!["a", "b", "f"], vec!["c", "d", "e", "g", "h"]]);
    assert_eq!(actions.iter().map(|a| a.bytes_before).collect::<Vec<_>>(), [100 * MIB, 100 * MIB]);
}

#[test]
fn a_day_whose_small_segments_fit_is_one_merge() {
    let segments: Vec<_> = (0..20).map(|i| small(&format!("s{i:02}"), 4)).collect();
    let actions = planner().plan(0, &segments);
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].inputs.len(), 20);
    assert_eq!(actions[0].bytes_before, 80 * MIB);
}

#[test]
fn validate_names_the_field() {
    assert_eq!(planner().validate(), Ok(()));
    assert_eq!(CompactPlanner { small_fraction: 1.0, ..planner() }.validate(), Ok(()));
    let field = |p: CompactPlanner| match p.validate() {
        Err(PolicyError::InvalidConfig { policy: "compact", field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(field(CompactPlanner { target_bytes: 0, ..planner() }), "target_bytes");
    assert_eq!(field(CompactPlanner { min_inputs: 1, ..planner() }), "min_inputs");
    for bad in [0.0, -0.5, 1.01, f64::NAN, f64::INFINITY] {
        assert_eq!(field(CompactPlanner { small_fraction: bad, ..planner() }), "small_fraction");
    }
}
