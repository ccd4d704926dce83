use super::*;
use crate::segment::SegmentState;
use crate::testing::{col, inputs, seg, DAY, DAY_MS, MIB};
use crate::PolicyError;

/// zstd-3 from day 0, zstd-9 from day 7, zstd-19 from day 30.
fn planner() -> RecompressPlanner {
    RecompressPlanner {
        ladder: vec![
            LadderStep { min_age_ms: 0, codec: "zstd-3".into() },
            LadderStep { min_age_ms: 7 * DAY_MS, codec: "zstd-9".into() },
            LadderStep { min_age_ms: 30 * DAY_MS, codec: "zstd-19".into() },
        ],
    }
}

const NOW: i64 = 1_000 * DAY_MS;

/// A columnar segment with `codec` whose newest event is `age_ms` old at [`NOW`].
fn aged(id: &str, codec: &str, age_ms: i64) -> SegmentStats {
    SegmentStats { max_time_ms: NOW - age_ms, ..col(id, codec) }
}

#[test]
fn moves_up_to_the_highest_step_reached() {
    let segments = [
        aged("fresh", "zstd-3", DAY_MS),
        aged("week", "zstd-3", 7 * DAY_MS),
        aged("month", "zstd-3", 45 * DAY_MS),
        aged("month-at-9", "zstd-9", 30 * DAY_MS),
        aged("almost-month", "zstd-9", 30 * DAY_MS - 1),
    ];
    let actions = planner().plan(NOW, &segments);
    assert_eq!(inputs(&actions), [["month"], ["month-at-9"], ["week"]]);
    let codecs: Vec<_> = actions.iter().map(|a| a.output_codec.as_str()).collect();
    // "month" skips zstd-9: it goes straight to where its age puts it.
    assert_eq!(codecs, ["zstd-19", "zstd-19", "zstd-9"]);
    assert_eq!(actions[2].reason, "age 7d >= 7d: zstd-3 -> zstd-9 (1.0 MiB)");
    assert!(actions.iter().all(|a| a.kind == RewriteKind::Recompress && a.bytes_before == MIB && a.day == DAY));
}

#[test]
fn age_is_that_of_the_newest_event() {
    // Written long ago (created_at 0) but holding a recent event: still fresh.
    let recent = SegmentStats { created_at_ms: 0, max_time_ms: NOW - DAY_MS, ..col("merged-late", "zstd-3") };
    assert_eq!(planner().plan(NOW, &[recent]), []);
    // Events "from the future" (clock skew) reach no step at all, not even age 0.
    assert_eq!(planner().plan(NOW, &[aged("future", "lz4", -1)]), []);
}

#[test]
fn never_moves_down_the_ladder() {
    let segments = [aged("strong", "zstd-19", 8 * DAY_MS), aged("same", "zstd-9", 8 * DAY_MS)];
    assert_eq!(planner().plan(NOW, &segments), []);
    // Even when the ladder changed so that zstd-19 now sits below the reached step.
    let reordered = RecompressPlanner {
        ladder: vec![
            LadderStep { min_age_ms: 0, codec: "zstd-19".into() },
            LadderStep { min_age_ms: DAY_MS, codec: "zstd-3".into() },
        ],
    };
    let actions = reordered.plan(NOW, &[aged("s", "zstd-19", 2 * DAY_MS), aged("t", "zstd-3", 2 * DAY_MS)]);
    assert_eq!(inputs(&actions), [["s"]]);
}

#[test]
fn codecs_outside_the_ladder_are_below_it() {
    let actions = planner().plan(NOW, &[aged("a", "lz4", 0), aged("b", "none", 8 * DAY_MS)]);
    assert_eq!(inputs(&actions), [["a"], ["b"]]);
    assert_eq!(actions[0].output_codec, "zstd-3");
    assert_eq!(actions[0].reason, "age 0ms >= 0ms: lz4 (not in the ladder) -> zstd-3 (1.0 MiB)");
    assert_eq!(actions[1].output_codec, "zstd-9");
}

#[test]
fn only_sealed_columnar_segments() {
    let old = 100 * DAY_MS;
    let segments = [
        SegmentStats { state: SegmentState::Open, ..aged("open", "zstd-3", old) },
        SegmentStats { state: SegmentState::Retired, ..aged("retired", "zstd-3", old) },
        SegmentStats { max_time_ms: NOW - old, ..seg("rows") },
        aged("ok", "zstd-3", old),
    ];
    assert_eq!(inputs(&planner().plan(NOW, &segments)), [["ok"]]);
}

#[test]
fn one_action_per_segment_in_project_day_id_order() {
    let old = 100 * DAY_MS;
    let segments = [
        SegmentStats { project: "web".into(), day: DAY, ..aged("b", "zstd-3", old) },
        SegmentStats { project: "web".into(), day: DAY - 1, ..aged("c", "zstd-3", old) },
        SegmentStats { project: "app".into(), day: DAY, ..aged("d", "zstd-3", old) },
        SegmentStats { project: "web".into(), day: DAY, ..aged("a", "zstd-3", old) },
    ];
    assert_eq!(inputs(&planner().plan(NOW, &segments)), [["d"], ["c"], ["a"], ["b"]]);
}

#[test]
fn validate_names_the_field() {
    assert_eq!(planner().validate(), Ok(()));
    let field = |ladder: Vec<(i64, &str)>| {
        let p = RecompressPlanner {
            ladder: ladder.into_iter().map(|(min_age_ms, c)| LadderStep { min_age_ms, codec: c.into() }).collect(),
        };
        match p.validate() {
            Err(PolicyError::InvalidConfig { policy: "recompress", field, .. }) => field,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(field(vec![]), "ladder");
    assert_eq!(field(vec![(0, "")]), "ladder[0].codec");
    assert_eq!(field(vec![(-1, "zstd-3")]), "ladder[0].min_age_ms");
    assert_eq!(field(vec![(0, "zstd-3"), (5, "zstd-9"), (5, "zstd-19")]), "ladder[2].min_age_ms");
    assert_eq!(field(vec![(0, "zstd-3"), (5, "zstd-9"), (3, "zstd-19")]), "ladder[2].min_age_ms");
    assert_eq!(field(vec![(0, "zstd-3"), (5, "zstd-3")]), "ladder[1].codec");
    let message = RecompressPlanner {
        ladder: vec![
            LadderStep { min_age_ms: 10, codec: "a".into() },
            LadderStep { min_age_ms: 10, codec: "b".into() },
        ],
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert_eq!(
        message,
        "invalid recompress policy: ladder[1].min_age_ms is 10 but ladder[0].min_age_ms is 10: \
         order the steps by strictly increasing age"
    );
}

#[test]
fn an_unvalidated_ladder_never_plans_a_rewrite_in_place() {
    // Repeated codec and non-increasing ages: a codec's highest step is its position, so zstd-3 (steps 0 and 2) has
    // reached its place, and zstd-9 (step 1) moves up to step 2.
    let p = RecompressPlanner {
        ladder: vec![
            LadderStep { min_age_ms: 5, codec: "zstd-3".into() },
            LadderStep { min_age_ms: 0, codec: "zstd-9".into() },
            LadderStep { min_age_ms: 0, codec: "zstd-3".into() },
        ],
    };
    let actions = p.plan(NOW, &[aged("a", "zstd-3", 10), aged("b", "zstd-9", 10)]);
    assert_eq!(inputs(&actions), [["b"]]);
    assert_eq!(actions[0].output_codec, "zstd-3");
}
