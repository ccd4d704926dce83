//! A query within its bounds answers as without them; one past a bound fails with the bound's key named, and gives
//! back what it held of the shared pool.

use std::sync::atomic::AtomicBool;

use serde_json::Value;

use super::count_only_tests::{mixed_catalog, query};
use super::limits::{GROUP_OVERHEAD_BYTES, WINNER_BYTES};
use super::*;

/// A condition every event meets: every day that needs dedup builds dedup state (a day of one Parquet segment is
/// counted without: see `memory_follows_the_largest_day_not_the_window`).
fn scanned(group_by: GroupBy) -> Query {
    let all = Filter { property: "i".into(), op: Op::Exists, value: Value::Null };
    query(i64::MIN, i64::MAX, None, vec![all], group_by)
}

#[test]
fn memory_follows_the_largest_day_not_the_window() {
    let f = mixed_catalog();
    let snapshot = f.catalog.snapshot();
    let source = SegmentSource::hot_only(f.layout.clone());
    let q = scanned(GroupBy::None);
    let want = f.model.answer(&q);
    // The fixture's days hold 400, 350 and 330 distinct events (1,080 in the window). Day 0, one Parquet segment,
    // needs no dedup state: the largest day that does is day 1 (two Parquet segments sharing events), 350.
    let (largest_deduplicated_day, largest_day, all_days) = (350u64, 400u64, want.0);
    assert!(all_days > 2 * largest_day, "{all_days}: the test can tell per-day state from whole-window state");
    let one_group = 2 * "null".len() as u64 + GROUP_OVERHEAD_BYTES;
    let limits =
        |days: u64, groups: u64| QueryLimits { max_memory_bytes: days * WINNER_BYTES + groups, ..Default::default() };
    let fits = limits(largest_deduplicated_day, one_group);
    let got = execute_limited(&source, &snapshot, &q, &Hidden::default(), &fits).unwrap();
    assert_eq!((got.total, got.rows), want);
    let too_small = limits(largest_deduplicated_day - 1, 0);
    let e = execute_limited(&source, &snapshot, &q, &Hidden::default(), &too_small).unwrap_err();
    assert!(matches!(e, StoreError::QueryTooLarge(_)) && e.to_string().contains("query.max_memory_bytes"), "{e}");
    // Deduplicating every day (the reference path), day 0's 400 events are held too.
    let reference = |limits: &QueryLimits<'_>| execute_planned(&source, &snapshot, &q, false, None, limits);
    let e = reference(&fits).unwrap_err();
    assert!(matches!(e, StoreError::QueryTooLarge(_)), "{e}");
    assert_eq!(reference(&limits(largest_day, one_group)).map(|r| (r.total, r.rows)).unwrap(), want);
}

#[test]
fn too_many_groups_are_refused_by_name() {
    let f = mixed_catalog();
    let snapshot = f.catalog.snapshot();
    let source = SegmentSource::hot_only(f.layout.clone());
    let q = scanned(GroupBy::Property("i".into()));
    let groups = f.model.answer(&q).1.len();
    assert!(groups > 10, "{groups}");
    let ok = QueryLimits { max_groups: groups, ..Default::default() };
    assert_eq!(execute_limited(&source, &snapshot, &q, &Hidden::default(), &ok).unwrap().rows.len(), groups);
    let limits = QueryLimits { max_groups: 10, ..Default::default() };
    let e = execute_limited(&source, &snapshot, &q, &Hidden::default(), &limits).unwrap_err();
    assert!(
        matches!(e, StoreError::QueryTooLarge(_)) && e.to_string().contains("more than 10 groups (query.max_groups)"),
        "{e}"
    );
}

#[test]
fn the_shared_pool_refuses_when_full_and_gets_everything_back() {
    let f = mixed_catalog();
    let snapshot = f.catalog.snapshot();
    let source = SegmentSource::hot_only(f.layout.clone());
    let q = scanned(GroupBy::Property("version".into()));
    let full = QueryMemory::new(0);
    let limits = QueryLimits { shared: Some(&full), ..Default::default() };
    let e = execute_limited(&source, &snapshot, &q, &Hidden::default(), &limits).unwrap_err();
    assert!(matches!(e, StoreError::QueryBusy(_)) && e.to_string().contains("query.max_total_memory_bytes"), "{e}");
    assert_eq!(full.used(), 0);
    let pool = QueryMemory::new(64 << 20);
    let limits = QueryLimits { shared: Some(&pool), ..Default::default() };
    let got = execute_limited(&source, &snapshot, &q, &Hidden::default(), &limits).unwrap();
    assert_eq!((got.total, got.rows), f.model.answer(&q));
    assert_eq!(pool.used(), 0, "a finished query gives its reservation back");
}

#[test]
fn a_cancelled_query_stops_with_the_reason() {
    let f = mixed_catalog();
    let snapshot = f.catalog.snapshot();
    let source = SegmentSource::hot_only(f.layout.clone());
    let stop = AtomicBool::new(true);
    let limits =
        QueryLimits { cancel: Some(&stop), cancel_reason: "ran past query.timeout_ms = 5", ..Default::default() };
    for q in [scanned(GroupBy::None), query(i64::MIN, i64::MAX, None, vec![], GroupBy::Event)] {
        let e = execute_limited(&source, &snapshot, &q, &Hidden::default(), &limits).unwrap_err();
        assert!(matches!(e, StoreError::QueryCancelled(_)) && e.to_string().contains("query.timeout_ms = 5"), "{e}");
    }
}

/// Three days of one Parquet segment each, counted without dedup on two threads: the answer is the one-thread answer
/// and the model's, and every bound holds while the days are counted side by side.
#[test]
fn days_counted_in_parallel_hold_the_bounds() {
    use super::count_only_tests::{event, fixture, DAY_MS, T0};
    let mut f = fixture();
    f.ingest(vec![(0..3).flat_map(|day| (0..200).map(move |i| event(day, i, day as u64))).collect()]);
    f.reencode(&[0, 1, 2]);
    let snapshot = f.catalog.snapshot();
    let source = SegmentSource::hot_only(f.layout.clone());
    let segments = snapshot.lookup("p", i64::MIN, i64::MAX);
    assert!(plan_days(&segments, Shortcut::GroupCounts).iter().all(|p| matches!(p, DayPlan::Grouped(_))));
    let two = QueryLimits { threads: 2, ..Default::default() };
    let by_i = scanned(GroupBy::Property("i".into()));
    for q in [
        by_i.clone(),
        scanned(GroupBy::Property("version".into())),
        query(T0, T0 + 2 * DAY_MS, None, vec![], GroupBy::Event),
    ] {
        let parallel = execute_limited(&source, &snapshot, &q, &Hidden::default(), &two).unwrap();
        let serial = execute_limited(&source, &snapshot, &q, &Hidden::default(), &QueryLimits::default()).unwrap();
        assert_eq!(parallel, serial, "{q:?}");
        assert_eq!((parallel.total, parallel.rows), f.model.answer(&q), "{q:?}");
    }
    // `i` takes the same 200 values every day: 200 groups in all, 200 per day.
    let refused = |limits: QueryLimits<'_>| execute_limited(&source, &snapshot, &by_i, &Hidden::default(), &limits);
    assert_eq!(refused(QueryLimits { max_groups: 200, ..two }).unwrap().rows.len(), 200);
    let e = refused(QueryLimits { max_groups: 199, ..two }).unwrap_err();
    assert!(e.to_string().contains("more than 199 groups (query.max_groups)"), "{e}");
    let e = refused(QueryLimits { max_memory_bytes: 100 * GROUP_OVERHEAD_BYTES, ..two }).unwrap_err();
    assert!(matches!(e, StoreError::QueryTooLarge(_)) && e.to_string().contains("query.max_memory_bytes"), "{e}");
    let pool = QueryMemory::new(64 << 20);
    refused(QueryLimits { shared: Some(&pool), ..two }).unwrap();
    assert_eq!(pool.used(), 0, "a finished query gives its reservation back");
    let full = QueryMemory::new(1000);
    let e = refused(QueryLimits { shared: Some(&full), ..two }).unwrap_err();
    assert!(matches!(e, StoreError::QueryBusy(_)), "{e}");
    assert_eq!(full.used(), 0);
    let stop = AtomicBool::new(true);
    let e = refused(QueryLimits { cancel: Some(&stop), cancel_reason: "ran past query.timeout_ms = 5", ..two })
        .unwrap_err();
    assert!(matches!(e, StoreError::QueryCancelled(_)), "{e}");
}
