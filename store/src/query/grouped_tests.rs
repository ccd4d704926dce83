//! The grouped path (days of one Parquet segment counted from their columns, `DayPlan::Grouped`) against the
//! reference path (every day scanned and deduplicated) and a model of dedup, on random catalogs built by the real
//! ingest and rewrite code: random property types per key (so keys shred to columns of every kind or spill to
//! `_props`), explicit nulls and missing keys, re-sends that change properties, and random queries with conditions
//! of every operator and every group key.

use proptest::prelude::*;
use serde_json::{json, Value};
use tierd_codecs::Event;

use super::count_only_tests::{fixture, query, DAY_MS, T0};
use super::*;

const NAMES: [&str; 3] = ["a", "b", "c"];
/// Properties the events carry, a lifted field, and a key no event has.
const KEYS: [&str; 10] = ["s", "i", "f", "b", "j", "n", "mixed", "absent", "time", "distinct_id"];

/// Values of every JSON type, few enough that conditions and groups meet the same values often: strings, integers
/// on both sides of the i64 border, floats with signed zeros, booleans, null, arrays and objects.
fn vocabulary() -> Vec<Value> {
    vec![
        json!(""),
        json!("a"),
        json!("b"),
        json!("Oslo"),
        json!("Zürich"),
        json!(-1),
        json!(0),
        json!(2),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(i64::MAX as u64 + 1),
        json!(-0.0),
        json!(0.0),
        json!(0.5),
        json!(2.0),
        json!(true),
        json!(false),
        Value::Null,
        json!([]),
        json!([1, "a"]),
        json!({"a": 1}),
        json!({}),
    ]
}

fn any_value() -> impl Strategy<Value = Value> {
    prop::sample::select(vocabulary())
}

/// A key's value: mostly of its typical type (so most segments shred it), now and then any other value or an
/// explicit null; absent a quarter of the time.
fn property(typical: Vec<Value>) -> impl Strategy<Value = Option<Value>> {
    prop::option::weighted(
        0.75,
        prop_oneof![6 => prop::sample::select(typical), 1 => any_value(), 1 => Just(Value::Null)],
    )
}

fn properties() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    (
        property(vec![json!("a"), json!("b"), json!("Oslo"), json!("Zürich"), json!("")]),
        property(vec![json!(-1), json!(0), json!(2), json!(7), json!(i64::MAX)]),
        property(vec![json!(0.5), json!(-0.0), json!(2.0), json!(1e300)]),
        property(vec![json!(true), json!(false)]),
        property(vec![json!([]), json!({"a": 1}), json!([1, "a"])]),
        property(vec![Value::Null, json!(u64::MAX)]),
        prop::option::of(any_value()),
    )
        .prop_map(|(s, i, f, b, j, n, mixed)| {
            let mut map = serde_json::Map::new();
            for (key, value) in [("s", s), ("i", i), ("f", f), ("b", b), ("j", j), ("n", n), ("mixed", mixed)] {
                if let Some(value) = value {
                    map.insert(key.to_owned(), value);
                }
            }
            map
        })
}

/// Event `i` of day `day` (0..3): its identity (and so its dedup key) depends on (day, i) only, so two events with
/// the same (day, i) are two copies of one event.
fn event(day: i64, i: u64, properties: serde_json::Map<String, Value>) -> Event {
    Event {
        event: NAMES[(i as usize * 7 + day as usize) % NAMES.len()].to_owned(),
        time_ms: T0 + day * DAY_MS + (i as i64 * 977_777) % DAY_MS,
        distinct_id: format!("u{}", i % 5),
        insert_id: format!("d{day}-{i}"),
        properties,
    }
}

/// Events of `days` with ids in `ids` (so some are copies of others).
fn events(days: std::ops::Range<i64>, ids: std::ops::Range<u64>, max: usize) -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((days, ids, properties()), 1..max)
        .prop_map(|events| events.into_iter().map(|(d, i, props)| event(d, i, props)).collect())
}

fn any_query() -> impl Strategy<Value = Query> {
    let window = prop_oneof![
        2 => Just((i64::MIN, i64::MAX)),
        1 => (0..3 * DAY_MS, 0..2 * DAY_MS).prop_map(|(from, len)| (T0 + from, T0 + from + len + 1)),
    ];
    let event = prop_oneof![3 => Just(None), 1 => prop::sample::select(vec!["a", "b", "zz"]).prop_map(Some)];
    let op = prop::sample::select(vec![Op::Eq, Op::Neq, Op::Lt, Op::Lte, Op::Gt, Op::Gte, Op::Exists]);
    let filter = (prop::sample::select(KEYS.to_vec()), op, any_value()).prop_map(|(key, op, value)| Filter {
        property: key.to_owned(),
        op,
        value,
    });
    let group_by = prop_oneof![
        1 => Just(GroupBy::None),
        1 => Just(GroupBy::Event),
        3 => prop::sample::select(KEYS.to_vec()).prop_map(|k| GroupBy::Property(k.to_owned())),
    ];
    (window, event, prop::collection::vec(filter, 0..3), group_by)
        .prop_map(|((from, to), event, filters, group_by)| query(from, to, event, filters, group_by))
}

/// A catalog: every day's first events (re-sends inside them included) re-encoded into one Parquet segment per
/// day; then re-sends and new events for days 1 and 2 only, day `resend_reencoded` of them re-encoded again (two
/// Parquet segments), the other left in a row segment. Day 0 always stays one Parquet segment.
fn any_catalog() -> impl Strategy<Value = (Vec<Event>, Vec<Event>, i64)> {
    let first = (events(0..1, 0..30, 40), events(1..3, 0..30, 60))
        .prop_map(|(day0, rest)| day0.into_iter().chain(rest).collect::<Vec<_>>());
    (first, events(1..3, 0..40, 30), 1..3i64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_grouped_path_answers_like_the_reference_path(
        (first, later, resend_reencoded) in any_catalog(),
        queries in prop::collection::vec(any_query(), 12),
    ) {
        let mut f = fixture();
        let first_days: std::collections::BTreeSet<i64> = first.iter().map(|e| (e.time_ms - T0) / DAY_MS).collect();
        f.ingest(vec![first]);
        f.reencode(&first_days.into_iter().collect::<Vec<_>>());
        let later_days: std::collections::BTreeSet<i64> = later.iter().map(|e| (e.time_ms - T0) / DAY_MS).collect();
        f.ingest(vec![later]);
        if later_days.contains(&resend_reencoded) {
            f.reencode(&[resend_reencoded]);
        }
        let snapshot = f.catalog.snapshot();
        let all = snapshot.lookup("p", i64::MIN, i64::MAX);
        let plans = plan_days(&all, Shortcut::GroupCounts);
        prop_assert!(matches!(plans[0], DayPlan::Grouped(_)), "day 0 is one Parquet segment: {:?}", plans);
        let source = SegmentSource::hot_only(f.layout.clone());
        for q in &queries {
            let fast = execute(&source, &snapshot, q).unwrap();
            let two = QueryLimits { threads: 2, ..QueryLimits::default() };
            let parallel = execute_limited(&source, &snapshot, q, &Hidden::default(), &two).unwrap();
            prop_assert_eq!(&parallel, &fast, "{:?}", q);
            let reference = execute_planned(&source, &snapshot, q, false, None, &QueryLimits::default()).unwrap();
            prop_assert_eq!((fast.total, &fast.rows), (reference.total, &reference.rows), "{:?}", q);
            prop_assert_eq!(fast.segments_scanned, reference.segments_scanned);
            let (total, mut rows) = f.model.answer(q);
            let mut got = fast.rows.clone();
            let text = |rows: &mut Vec<(Value, u64)>| rows.sort_by_key(|(k, n)| (k.to_string(), *n));
            text(&mut rows);
            text(&mut got);
            prop_assert_eq!((fast.total, got), (total, rows), "{:?}", q);
        }
    }
}
