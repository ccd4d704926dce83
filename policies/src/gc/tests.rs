//! Each rule of the GC policy at its boundary, with the exact reason texts the CLI prints.

use super::*;

const POLICY: GcPolicy =
    GcPolicy { grace_ms: 100, lease_ttl_ms: 50, trash_retention_ms: 1_000, erase_trash_retention_ms: 0 };

/// Segment `id`'s copy at `"<id>.hot"`, retired at 1_000 by generation 7 (replaced by "out").
fn retired(id: &'static str) -> OutOfService<&'static str, String> {
    OutOfService {
        id,
        location: format!("{id}.hot"),
        bytes: 10,
        at_ms: 1_000,
        generation: 7,
        cause: LeftService::Retired { replaced_by: vec!["out"] },
        erase: false,
    }
}

fn inputs(copies: Vec<OutOfService<&'static str, String>>) -> GcInputs<&'static str, String> {
    GcInputs { out_of_service: copies, ..GcInputs::default() }
}

fn lease(id: &str, expires_at_ms: i64, segments: Vec<&'static str>) -> Lease<&'static str> {
    Lease { id: id.to_owned(), expires_at_ms, segments }
}

/// The single decision about a plan over `inputs` at `now_ms`.
fn only(now_ms: i64, inputs: &GcInputs<&'static str, String>) -> GcDecision<&'static str, String> {
    let mut d = POLICY.plan(now_ms, inputs);
    assert_eq!(d.len(), 1, "{d:?}");
    d.remove(0)
}

fn keep_reason(now_ms: i64, inputs: &GcInputs<&'static str, String>) -> String {
    let d = only(now_ms, inputs);
    assert_eq!(d.action, GcAction::Keep, "{d:?}");
    d.reason
}

#[test]
fn a_copy_nothing_holds_is_deleted_with_how_it_left_service() {
    let d = only(1_100, &inputs(vec![retired("a")]));
    assert_eq!(
        d,
        GcDecision {
            id: Some("a"),
            location: "a.hot".to_owned(),
            bytes: 10,
            action: GcAction::Delete,
            reason:
                r#"retired at 1000 by generation 7 (replaced by ["out"]); no lease or reader holds it; grace passed"#
                    .to_owned(),
        }
    );
    let moved = OutOfService { cause: LeftService::Moved, ..retired("a") };
    let d = only(1_100, &inputs(vec![moved]));
    assert_eq!(d.reason, "moved away at 1000 by generation 7; no lease or reader holds it; grace passed");
}

#[test]
fn a_live_lease_holds_its_segments_and_an_ended_one_does_not() {
    let mut i = inputs(vec![retired("a")]);
    i.leases = vec![lease("L1", 2_000, vec!["b", "a"])];
    assert_eq!(keep_reason(1_999, &i), "held by lease L1 until 2000");
    assert_eq!(only(2_000, &i).action, GcAction::Delete, "a lease ends at its expiry");
    i.leases = vec![lease("L1", 2_000, vec!["b"])];
    assert_eq!(only(1_100, &i).action, GcAction::Delete, "another segment's lease");
}

#[test]
fn the_longest_lease_is_named_and_ties_go_to_the_smallest_id() {
    let mut i = inputs(vec![retired("a")]);
    i.leases = vec![lease("L2", 3_000, vec!["a"]), lease("L9", 5_000, vec!["a"]), lease("L1", 3_000, vec!["a"])];
    assert_eq!(keep_reason(1_100, &i), "held by lease L9 until 5000");
    i.leases = vec![lease("L2", 3_000, vec!["a"]), lease("L1", 3_000, vec!["a"])];
    assert_eq!(keep_reason(1_100, &i), "held by lease L1 until 3000");
    i.leases.reverse();
    assert_eq!(keep_reason(1_100, &i), "held by lease L1 until 3000");
}

#[test]
fn a_pin_older_than_the_change_holds_and_one_at_or_after_it_does_not() {
    let mut i = inputs(vec![retired("a")]);
    i.oldest_pinned_generation = Some(6);
    assert_eq!(keep_reason(1_100, &i), "a reader holds catalog generation 6 (< 7, when it left service)");
    for pinned in [7, 8] {
        i.oldest_pinned_generation = Some(pinned);
        assert_eq!(only(1_100, &i).action, GcAction::Delete, "pinned {pinned}");
    }
}

#[test]
fn grace_and_a_recent_restart_hold() {
    let mut i = inputs(vec![retired("a")]);
    assert_eq!(keep_reason(1_099, &i), "grace period until 1100");
    assert_eq!(only(1_100, &i).action, GcAction::Delete);
    i.started_at_ms = 1_060;
    assert_eq!(
        keep_reason(1_109, &i),
        "restarted recently: leases from before the restart may be lost; wait until 1110"
    );
    assert_eq!(only(1_110, &i).action, GcAction::Delete);
}

#[test]
fn the_first_rule_that_holds_is_the_reason() {
    let mut i = inputs(vec![retired("a")]);
    i.started_at_ms = 1_000;
    assert!(keep_reason(1_000, &i).starts_with("grace period"));
    i.oldest_pinned_generation = Some(0);
    assert!(keep_reason(1_000, &i).starts_with("a reader holds"));
    i.leases = vec![lease("L", 9_000, vec!["a"])];
    assert!(keep_reason(1_000, &i).starts_with("held by lease"));
}

#[test]
fn times_at_the_ends_of_the_range_saturate() {
    let i = inputs(vec![OutOfService { at_ms: i64::MAX, ..retired("a") }]);
    assert_eq!(keep_reason(i64::MAX - 1, &i), format!("grace period until {}", i64::MAX));
    let i = GcInputs { started_at_ms: i64::MAX, ..inputs(vec![retired("a")]) };
    assert!(keep_reason(i64::MAX - 1, &i).starts_with("restarted recently"));
}

#[test]
fn a_side_segment_expires_at_its_retention_end_once_per_copy() {
    let side = SideSegment {
        id: "d",
        of: "out",
        locations: vec!["d.hot".to_owned(), "d.cold".to_owned()],
        bytes: 3,
        keep_until_ms: 5_000,
    };
    let i = GcInputs { side_segments: vec![side], ..GcInputs::default() };
    assert!(POLICY.plan(4_999, &i).is_empty());
    let d = POLICY.plan(5_000, &i);
    let locations: Vec<&str> = d.iter().map(|d| d.location.as_str()).collect();
    assert_eq!(locations, ["d.hot", "d.cold"]);
    for d in &d {
        assert_eq!((d.id, d.action, d.bytes), (Some("d"), GcAction::Expire, 3));
        assert_eq!(d.reason, "duplicates removed by the rewrite into out, kept until 5000: retention ended");
    }
}

#[test]
fn unknown_cold_objects_are_orphans_once_past_the_grace_and_known_ones_are_left_alone() {
    let object = |key: &str, written_at_ms| ColdObject { location: key.to_owned(), bytes: 4, written_at_ms };
    let i: GcInputs<&str, String> = GcInputs {
        cold_objects: vec![object("known", 0), object("young", 1_000), object("old", 900)],
        known_cold: HashSet::from(["known".to_owned()]),
        ..GcInputs::default()
    };
    let d = POLICY.plan(1_000, &i);
    assert_eq!(
        d,
        vec![
            GcDecision {
                id: None,
                location: "young".to_owned(),
                bytes: 4,
                action: GcAction::Keep,
                reason: "unknown object written at 1000: may be an upload in progress".to_owned(),
            },
            GcDecision {
                id: None,
                location: "old".to_owned(),
                bytes: 4,
                action: GcAction::Orphan,
                reason: "no catalog record names it; written at 900, past the grace".to_owned(),
            },
        ]
    );
}

#[test]
fn a_needed_copy_the_cold_tier_does_not_list_is_missing() {
    let needed = |key: &str| NeededCopy { id: "s", location: key.to_owned(), bytes: 8, rows: 2 };
    let i = GcInputs {
        cold_objects: vec![ColdObject { location: "here".to_owned(), bytes: 8, written_at_ms: 0 }],
        known_cold: HashSet::from(["here".to_owned(), "gone".to_owned()]),
        needed_cold: vec![needed("here"), needed("gone")],
        ..GcInputs::default()
    };
    let d = only(1_000, &i);
    assert_eq!((d.id, d.location.as_str(), d.action), (Some("s"), "gone", GcAction::Missing));
    assert_eq!(d.reason, "segment s (2 rows) needs it; the cold tier does not list it");
}

#[test]
fn trash_is_purged_after_its_retention_and_never_without_a_time() {
    let entry = |name: &str, since_ms| TrashEntry { location: name.to_owned(), bytes: 1, since_ms };
    let i: GcInputs<&str, String> = GcInputs {
        trash: vec![entry("due", Some(1_000)), entry("young", Some(1_001)), entry("odd", None)],
        ..GcInputs::default()
    };
    let d = only(2_000, &i);
    assert_eq!((d.location.as_str(), d.action, d.id), ("due", GcAction::Purge, None));
    assert_eq!(d.reason, "in the trash since 1000, past the retention");
    assert!(POLICY.plan(i64::MAX, &i).iter().all(|d| d.location != "odd"));
}

#[test]
fn an_erased_copy_keeps_every_reader_rule_then_skips_the_trash_at_retention_zero() {
    let erased = OutOfService { erase: true, ..retired("a") };
    // Every rule that protects readers still holds it.
    let leased = GcInputs { leases: vec![lease("l", 2_000, vec!["a"])], ..inputs(vec![erased.clone()]) };
    assert_eq!(only(1_100, &leased).action, GcAction::Keep);
    let pinned = GcInputs { oldest_pinned_generation: Some(6), ..inputs(vec![erased.clone()]) };
    assert_eq!(only(1_100, &pinned).action, GcAction::Keep);
    assert_eq!(only(1_099, &inputs(vec![erased.clone()])).action, GcAction::Keep, "grace");
    let restarted = GcInputs { started_at_ms: 1_080, ..inputs(vec![erased.clone()]) };
    assert_eq!(only(1_100, &restarted).action, GcAction::Keep, "restart");
    // Then: erased for good, no trash.
    let d = only(1_100, &inputs(vec![erased.clone()]));
    assert_eq!(d.action, GcAction::Erase, "{d:?}");
    assert!(d.reason.contains("without the trash"), "{}", d.reason);
    // With an erasure retention, to the trash like any copy.
    let kept = GcPolicy { erase_trash_retention_ms: 30, ..POLICY };
    let d = kept.plan(1_100, &inputs(vec![erased]));
    assert_eq!((d.len(), d[0].action), (1, GcAction::Delete), "{d:?}");
    assert!(d[0].reason.contains("kept in the trash 30 ms"), "{}", d[0].reason);
}

#[test]
fn trashed_erased_copies_are_purged_at_the_erasure_retention_not_the_batchs() {
    let policy = GcPolicy { erase_trash_retention_ms: 30, ..POLICY };
    let e = ErasedTrash { id: "a", location: "trash/500/hot/p/a.rows".to_owned(), bytes: 3, since_ms: 500 };
    let i = GcInputs { erased_trash: vec![e], ..GcInputs::default() };
    assert!(policy.plan(529, &i).is_empty());
    let d = policy.plan(530, &i);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].action, d[0].id, d[0].bytes), (GcAction::Purge, Some("a"), 3));
    // Once the batch itself is due, its purge takes the copy along: no second decision.
    assert!(policy.plan(1_500, &i).is_empty());
}
