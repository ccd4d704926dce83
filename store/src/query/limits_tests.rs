//! A query within its bounds answers as without them; one past a bound fails with the bound's key named, and gives
//! back what it held of the shared pool.

use std::sync::atomic::AtomicBool;

use serde_json::Value;

use super::count_only_tests::{mixed_catalog, query};
use super::limits::{GROUP_OVERHEAD_BYTES, WINNER_BYTES};
use super::*;

/// Forces the scan path (a condition every event meets), so every day builds dedup state.
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
    // The fixture's largest day holds 400 distinct events (of the 1,080 in the window) and one group.
    let (largest_day, all_days) = (400u64, want.0);
    assert!(all_days > 2 * largest_day, "{all_days}: the test can tell per-day state from whole-window state");
    let one_group = 2 * "null".len() as u64 + GROUP_OVERHEAD_BYTES;
    let fits_a_day = QueryLimits { max_memory_bytes: largest_day * WINNER_BYTES + one_group, ..Default::default() };
    let got = execute_limited(&source, &snapshot, &q, &Hidden::default(), &fits_a_day).unwrap();
    assert_eq!((got.total, got.rows), want);
    let too_small = QueryLimits { max_memory_bytes: (largest_day - 1) * WINNER_BYTES, ..Default::default() };
    let e = execute_limited(&source, &snapshot, &q, &Hidden::default(), &too_small).unwrap_err();
    assert!(matches!(e, StoreError::QueryTooLarge(_)) && e.to_string().contains("query.max_memory_bytes"), "{e}");
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
