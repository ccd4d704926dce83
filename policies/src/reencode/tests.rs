use super::*;
use crate::segment::SegmentState;
use crate::testing::{inputs, seg, DAY, HOUR_MS, MIB};
use crate::PolicyError;

fn planner() -> ReencodePlanner {
    ReencodePlanner { output_codec: "zstd-3".to_owned(), max_output_bytes: 100 * MIB, min_age_ms: HOUR_MS }
}

const NOW: i64 = 10 * HOUR_MS;

#[test]
fn plans_only_sealed_row_segments() {
    let segments = [
        seg("sealed"),
        SegmentStats { state: SegmentState::Open, ..seg("open") },
        SegmentStats { state: SegmentState::Retired, ..seg("retired") },
        SegmentStats { format: SegmentFormat::Columnar, ..seg("columnar") },
    ];
    let actions = planner().plan(NOW, &segments);
    assert_eq!(inputs(&actions), [["sealed"]]);
    let a = &actions[0];
    assert_eq!((a.kind, a.project.as_str(), a.day), (RewriteKind::Reencode, "web", DAY));
    assert_eq!((a.output_codec.as_str(), a.bytes_before), ("zstd-3", MIB));
}

#[test]
fn waits_until_min_age_since_first_write() {
    let p = planner();
    let segments = [
        SegmentStats { created_at_ms: NOW - HOUR_MS, ..seg("exactly-old-enough") },
        SegmentStats { created_at_ms: NOW - HOUR_MS + 1, ..seg("one-ms-too-young") },
        // A clock that went backwards makes a segment look written in the future: it waits too.
        SegmentStats { created_at_ms: NOW + HOUR_MS, ..seg("future") },
    ];
    assert_eq!(inputs(&p.plan(NOW, &segments)), [["exactly-old-enough"]]);
    // min_age 0: a segment is planned as soon as it is sealed.
    let eager = ReencodePlanner { min_age_ms: 0, ..p };
    assert_eq!(inputs(&eager.plan(NOW - HOUR_MS + 1, &segments)), [["exactly-old-enough", "one-ms-too-young"]]);
}

#[test]
fn groups_by_project_and_day() {
    let segments = [
        SegmentStats { project: "web".into(), day: DAY + 1, ..seg("w2") },
        SegmentStats { project: "app".into(), day: DAY, ..seg("a1") },
        SegmentStats { project: "web".into(), day: DAY, ..seg("w1b") },
        SegmentStats { project: "web".into(), day: DAY, ..seg("w1a") },
    ];
    let actions = planner().plan(NOW, &segments);
    // One action per (project, day), in (project, day) order, inputs sorted by id.
    assert_eq!(inputs(&actions), vec![vec!["a1"], vec!["w1a", "w1b"], vec!["w2"]]);
    assert_eq!(
        actions.iter().map(|a| (a.project.as_str(), a.day)).collect::<Vec<_>>(),
        [("app", DAY), ("web", DAY), ("web", DAY + 1)]
    );
    assert_eq!(actions[1].bytes_before, 2 * MIB);
}

#[test]
fn packs_in_write_order_up_to_the_limit() {
    // Ids sort the other way round from write order: packing follows created_at, not ids.
    let segments = [
        SegmentStats { bytes: 40 * MIB, created_at_ms: 3, ..seg("a") },
        SegmentStats { bytes: 40 * MIB, created_at_ms: 2, ..seg("b") },
        SegmentStats { bytes: 60 * MIB, created_at_ms: 1, ..seg("c") },
        SegmentStats { bytes: 20 * MIB, created_at_ms: 4, ..seg("d") },
    ];
    let actions = planner().plan(NOW, &segments);
    // c(60) + b(40) = 100 fits exactly; a(40) would make 140, so a starts the next action, which d(20) joins.
    assert_eq!(inputs(&actions), [["b", "c"], ["a", "d"]]);
    assert_eq!(actions.iter().map(|a| a.bytes_before).collect::<Vec<_>>(), [100 * MIB, 60 * MIB]);
}

#[test]
fn same_write_time_packs_in_id_order() {
    let segments: Vec<_> = ["d", "b", "a", "c"].map(|id| SegmentStats { bytes: 50 * MIB, ..seg(id) }).into();
    assert_eq!(inputs(&planner().plan(NOW, &segments)), [["a", "b"], ["c", "d"]]);
}

#[test]
fn an_input_over_the_limit_is_an_action_by_itself() {
    let segments = [
        SegmentStats { bytes: 30 * MIB, created_at_ms: 1, ..seg("a") },
        SegmentStats { bytes: 300 * MIB, created_at_ms: 2, ..seg("big") },
        SegmentStats { bytes: 30 * MIB, created_at_ms: 3, ..seg("c") },
    ];
    let actions = planner().plan(NOW, &segments);
    // The oversized segment does not split its neighbours in write order.
    assert_eq!(inputs(&actions), [vec!["big"], vec!["a", "c"]]);
    assert_eq!(actions[0].bytes_before, 300 * MIB);
    assert!(actions[0].reason.contains("alone: over max_output_bytes 100.0 MiB"), "{}", actions[0].reason);
}

#[test]
fn reason_names_the_numbers() {
    let segments = [
        SegmentStats { bytes: 20 * MIB, created_at_ms: NOW - 5 * HOUR_MS, ..seg("a") },
        SegmentStats { bytes: 21 * MIB + 220 * 1024, created_at_ms: NOW - 2 * HOUR_MS, ..seg("b") },
    ];
    let actions = planner().plan(NOW, &segments);
    assert_eq!(
        actions[0].reason,
        "2 sealed row segments of 2026-01-01 (41.2 MiB; youngest written 2h ago >= min_age 1h) \
         -> one columnar zstd-3 segment"
    );

    let split: Vec<_> = ["a", "b", "c"].map(|id| SegmentStats { bytes: 60 * MIB, ..seg(id) }).into();
    let actions = planner().plan(NOW, &split);
    assert_eq!(actions.len(), 3);
    assert!(
        actions[1].reason.ends_with("; part 2 of 3: the day's 180.0 MiB exceed max_output_bytes 100.0 MiB"),
        "{}",
        actions[1].reason
    );
}

#[test]
fn duplicated_ids_are_never_planned() {
    let segments = [seg("dup"), SegmentStats { bytes: 7, ..seg("dup") }, seg("ok")];
    assert_eq!(inputs(&planner().plan(NOW, &segments)), [["ok"]]);
}

#[test]
fn validate_names_the_field() {
    assert_eq!(planner().validate(), Ok(()));
    assert_eq!(ReencodePlanner { min_age_ms: 0, ..planner() }.validate(), Ok(()));
    let field = |p: ReencodePlanner| match p.validate() {
        Err(PolicyError::InvalidConfig { policy: "reencode", field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(field(ReencodePlanner { output_codec: String::new(), ..planner() }), "output_codec");
    assert_eq!(field(ReencodePlanner { max_output_bytes: 0, ..planner() }), "max_output_bytes");
    assert_eq!(field(ReencodePlanner { min_age_ms: -1, ..planner() }), "min_age_ms");
    let message = ReencodePlanner { min_age_ms: -5, ..planner() }.validate().unwrap_err().to_string();
    assert_eq!(
        message,
        "invalid reencode policy: min_age_ms is negative (-5): set 0 to re-encode as soon as a segment is sealed"
    );
}
