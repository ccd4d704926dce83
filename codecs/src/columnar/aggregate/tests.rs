//! Grouped counts against the definition: decode every event, keep those of the window and name that meet every
//! condition (`Filter::matches`), group them by `GroupBy::key`.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{json, Number, Value};

use super::super::tests::{info, stored};
use super::super::*;
use super::Plan;
use crate::condition::{Filter, GroupBy, Op};
use crate::event::StoredEvent;
use crate::testing::{json_value, segment_events};

/// Counts per key by JSON text (which tells `1` from `1.0` and `0.0` from `-0.0`, as the query engine's groups do).
type ByText = BTreeMap<String, u64>;

fn by_text(rows: Vec<(Value, u64)>) -> ByText {
    let mut out = ByText::new();
    for (key, n) in rows {
        assert!(n > 0, "a count of zero for {key}");
        *out.entry(key.to_string()).or_default() += n;
    }
    out
}

/// The definition, on the decoded events.
fn expected(bytes: &[u8], req: &GroupCountRequest) -> ByText {
    let (_, events) = decode(bytes).unwrap();
    expected_of(&events, req)
}

fn expected_of(events: &[StoredEvent], req: &GroupCountRequest) -> ByText {
    let mut out = ByText::new();
    for e in events.iter().map(|s| &s.event) {
        let scan = &req.scan;
        if (scan.from_ms..scan.to_ms).contains(&e.time_ms)
            && scan.event.as_ref().is_none_or(|n| *n == e.event)
            && req.filters.iter().all(|f| f.matches(e))
        {
            *out.entry(req.group_by.key(e).to_string()).or_default() += 1;
        }
    }
    out
}

fn counted(bytes: &[u8], req: &GroupCountRequest) -> ByText {
    let (rows, stats) = count_groups(Bytes::copy_from_slice(bytes), req, |_| true).unwrap();
    let (_, scan_stats) = count_by_event(Bytes::copy_from_slice(bytes), &req.scan).unwrap();
    assert_eq!(stats, scan_stats, "the same row groups and rows as a scan");
    by_text(rows)
}

fn request(
    from_ms: i64,
    to_ms: i64,
    event: Option<&str>,
    filters: Vec<Filter>,
    group_by: GroupBy,
) -> GroupCountRequest {
    GroupCountRequest {
        scan: ScanRequest { from_ms, to_ms, event: event.map(str::to_owned), properties: None },
        filters,
        group_by,
    }
}

fn f(property: &str, op: Op, value: Value) -> Filter {
    Filter { property: property.into(), op, value }
}

/// `city`: a string column (in 5 of 8 rows) with an explicit `null` and a number spilled to `_props`, and one row
/// without it; `n`: an integer column with a float and a big `u64` spilled.
fn cities() -> Vec<StoredEvent> {
    vec![
        stored(1, "view", 10, json!({"city": "Oslo", "n": 1})),
        stored(2, "view", 20, json!({"city": "Oslo", "n": 2})),
        stored(3, "buy", 30, json!({"city": "Rome", "n": 3})),
        stored(4, "view", 40, json!({"city": "Bergen", "n": 2.0})),
        stored(5, "buy", 50, json!({"city": null, "n": u64::MAX})),
        stored(6, "view", 60, json!({"city": 7, "n": -1})),
        stored(7, "view", 70, json!({"city": "Oslo"})),
        stored(8, "view", 80, json!({"n": 5})),
    ]
}

#[test]
fn groups_and_conditions_read_columns_and_spills_as_events_do() {
    for dictionary in [true, false] {
        let spec = CodecSpec { row_group_rows: 3, dictionary, ..CodecSpec::default() };
        let bytes = encode(&info(), &cities(), &spec).unwrap();
        let meta = read_meta(&bytes).unwrap();
        assert!(meta.columns.iter().any(|c| c.key == "city" && c.kind == ColumnKind::Utf8), "{meta:?}");
        assert!(meta.props_keys.iter().any(|k| k == "city") && meta.props_keys.iter().any(|k| k == "n"), "{meta:?}");
        let all = |filters, group_by| request(i64::MIN, i64::MAX, None, filters, group_by);
        let city = GroupBy::Property("city".into());
        let got = counted(&bytes, &all(vec![], city.clone()));
        // Missing and null are one group.
        let want: ByText = [("\"Oslo\"", 3), ("\"Rome\"", 1), ("\"Bergen\"", 1), ("null", 1 + 1), ("7", 1)]
            .map(|(k, n)| (k.into(), n))
            .into();
        assert_eq!(got, want, "dictionary {dictionary}");
        // `neq` holds where the key is missing; `eq 2` matches the integer and the float 2.0.
        let got = counted(&bytes, &all(vec![f("n", Op::Neq, json!(3)), f("n", Op::Eq, json!(2))], city.clone()));
        assert_eq!(got, [("\"Oslo\"".to_owned(), 1), ("\"Bergen\"".to_owned(), 1)].into());
        let got = counted(&bytes, &all(vec![f("n", Op::Neq, json!(3))], GroupBy::None));
        assert_eq!(got, [("null".to_owned(), 7)].into());
        // A u64 above i64::MAX is above every i64.
        let got = counted(&bytes, &all(vec![f("n", Op::Gt, json!(i64::MAX))], GroupBy::Event));
        assert_eq!(got, [("\"buy\"".to_owned(), 1)].into());
        let got = counted(&bytes, &all(vec![f("city", Op::Exists, Value::Null)], GroupBy::None));
        assert_eq!(got, [("null".to_owned(), 6)].into());
        let got = counted(&bytes, &all(vec![f("city", Op::Lt, json!("P"))], GroupBy::Property("time".into())));
        assert_eq!(
            got,
            [("10".to_owned(), 1), ("20".to_owned(), 1), ("40".to_owned(), 1), ("70".to_owned(), 1)].into()
        );
        let window = request(15, 65, Some("view"), vec![f("distinct_id", Op::Gte, json!("user2"))], city.clone());
        assert_eq!(counted(&bytes, &window), [("\"Bergen\"".to_owned(), 1), ("\"Oslo\"".to_owned(), 1)].into());
    }
}

/// Integers compare exactly with integers, whatever their `f64` images: `i64::MAX` and `i64::MAX + 1` (a u64) are
/// both `2^63` as floats, but one is below the other.
#[test]
fn integers_compare_exactly_across_the_i64_border() {
    let events = vec![stored(1, "e", 1, json!({"n": i64::MAX})), stored(2, "e", 2, json!({"n": i64::MAX - 1}))];
    let bytes = encode(&info(), &events, &CodecSpec::default()).unwrap();
    assert!(read_meta(&bytes).unwrap().columns.iter().any(|c| c.key == "n" && c.kind == ColumnKind::Int64));
    let count = |op, value: Value| {
        let req = request(i64::MIN, i64::MAX, None, vec![f("n", op, value)], GroupBy::None);
        let got = counted(&bytes, &req);
        assert_eq!(got, expected(&bytes, &req), "{req:?}");
        got.get("null").copied().unwrap_or(0)
    };
    assert_eq!(count(Op::Eq, json!(i64::MAX as u64 + 1)), 0);
    assert_eq!(count(Op::Lt, json!(i64::MAX as u64 + 1)), 2);
    assert_eq!(count(Op::Eq, json!(i64::MAX)), 1);
    assert_eq!(count(Op::Eq, json!(i64::MAX as f64)), 2, "as floats both are 2^63");
}

#[test]
fn only_the_columns_a_request_needs_are_read() {
    let mut events: Vec<StoredEvent> = (0..20)
        .map(|i| stored(i, "e", i as i64, json!({"os": format!("os{}", i % 3), "rare": i, "city": "Oslo"})))
        .collect();
    // `os` spills only a null, `city` a null and a number.
    events[0].event.properties.insert("os".into(), json!(null));
    events[1].event.properties.insert("city".into(), json!(null));
    events[2].event.properties.insert("city".into(), json!(7));
    let bytes = Bytes::from(encode(&info(), &events, &CodecSpec::default()).unwrap());
    let footer = ColumnarFooter::load(&bytes).unwrap();
    let layout = &footer.layout;
    assert_eq!(layout.props_valued_keys, Some(["city".to_owned()].into()));
    let column = |key: &str| 5 + layout.columns.iter().position(|c| c.key == key).unwrap();
    let props = layout.props_index();
    let roots =
        |layout, filters: Vec<Filter>, group_by| Plan::new(layout, &request(0, 1, None, filters, group_by)).roots;
    assert_eq!(roots(layout, vec![], GroupBy::None), [0]);
    assert_eq!(roots(layout, vec![], GroupBy::Event), [0, 1]);
    // `rare` never spills: its column alone.
    assert_eq!(roots(layout, vec![f("rare", Op::Gt, json!(3))], GroupBy::None), [0, column("rare")]);
    // `os` spilled only a null, which is the group `null` like a missing value.
    assert_eq!(roots(layout, vec![], GroupBy::Property("os".into())), [0, column("os")]);
    assert_eq!(roots(layout, vec![f("os", Op::Neq, json!("os1"))], GroupBy::None), [0, column("os")]);
    // ...but `eq null` tells an explicit null from a missing key.
    assert_eq!(roots(layout, vec![f("os", Op::Eq, json!(null))], GroupBy::None), [0, column("os"), props]);
    assert_eq!(roots(layout, vec![], GroupBy::Property("city".into())), [0, column("city"), props]);
    assert_eq!(roots(layout, vec![f("distinct_id", Op::Eq, json!("u"))], GroupBy::None), [0, 2]);
    assert_eq!(roots(layout, vec![f("absent", Op::Neq, json!(1))], GroupBy::None), [0]);
    // A file that does not say which keys spilled only nulls: `_props` is read for every key in it.
    let mut older = layout.clone();
    older.props_valued_keys = None;
    assert_eq!(roots(&older, vec![], GroupBy::Property("os".into())), [0, column("os"), props]);
    let plan = Plan::new(layout, &request(0, 1, None, vec![], GroupBy::Property("os".into())));
    assert_eq!(plan.strings, [column("os")], "the string column is read as a dictionary");
    let plan = Plan::new(layout, &request(0, 1, None, vec![], GroupBy::Property("distinct_id".into())));
    assert_eq!(plan.strings, [2], "so is distinct_id");
    // Recompression keeps the footer's account of the spills.
    let recompressed = recompress(&bytes, &CodecSpec { compression: Compression::Zstd(3), ..CodecSpec::default() });
    let again = ColumnarFooter::load(&Bytes::from(recompressed.unwrap())).unwrap();
    assert_eq!(again.layout.props_valued_keys, layout.props_valued_keys);
    for group_by in [GroupBy::Property("os".into()), GroupBy::Property("city".into())] {
        let nulls = [f("os", Op::Eq, json!(null)), f("os", Op::Neq, json!(null)), f("city", Op::Neq, json!(null))];
        for filters in std::iter::once(vec![]).chain(nulls.map(|n| vec![n])) {
            let req = request(i64::MIN, i64::MAX, None, filters, group_by.clone());
            assert_eq!(counted(&bytes, &req), expected(&bytes, &req), "{req:?}");
        }
    }
}

#[test]
fn a_count_stops_when_told_and_reports_its_groups() {
    // More rows than one batch of the reader (8192).
    let n = 10_000;
    let events: Vec<StoredEvent> = (0..n).map(|i| stored(i, "e", i as i64, json!({"k": i}))).collect();
    let bytes =
        Bytes::from(encode(&info(), &events, &CodecSpec { row_group_rows: 1000, ..CodecSpec::default() }).unwrap());
    let req = request(i64::MIN, i64::MAX, None, vec![], GroupBy::Property("k".into()));
    let mut seen = Vec::new();
    let (rows, _) = count_groups(bytes.clone(), &req, |p| {
        seen.push(p);
        true
    })
    .unwrap();
    assert_eq!(rows.len(), n as usize);
    assert!(seen.len() >= 2, "{seen:?}");
    assert_eq!(seen.last().unwrap().groups, n as usize);
    assert_eq!(seen.last().unwrap().key_bytes, 8 * n);
    assert!(seen.windows(2).all(|w| w[0].groups <= w[1].groups));
    let mut calls = 0;
    let (rows, _) = count_groups(bytes, &req, |_| {
        calls += 1;
        false
    })
    .unwrap();
    assert_eq!(calls, 1);
    assert!(rows.len() < n as usize, "stopped after the first batch: {}", rows.len());
}

/// Keys the generated segments carry (see `segment_events`, and [`with_null_spills`] for `z`), lifted fields, and
/// keys no event has.
const KEYS: [&str; 13] =
    ["s", "i", "f", "b", "j", "n", "mixed", "z", "", "absent", "time", "distinct_id", "$insert_id"];

/// Adds `z`: a string in most events, `null` in some (spilled, only as `null`), absent from others.
fn with_null_spills(mut events: Vec<StoredEvent>) -> Vec<StoredEvent> {
    for e in &mut events {
        match e.seq % 7 {
            0 => {}
            1 | 4 => _ = e.event.properties.insert("z".into(), Value::Null),
            n => _ = e.event.properties.insert("z".into(), json!(format!("z{}", n % 3))),
        }
    }
    events
}

/// Operands at the edges of the comparisons: integers around the i64/u64 border, signed zeros, a fraction, empty
/// and short strings, booleans, null, empty containers.
fn edges() -> Vec<Value> {
    vec![
        json!(u64::MAX),
        json!(i64::MAX as u64 + 1),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(0),
        json!(-0.0),
        json!(0.0),
        json!(0.5),
        json!(-1),
        json!(""),
        json!("m"),
        json!(true),
        json!(false),
        Value::Null,
        json!([]),
        json!({}),
    ]
}

/// Operands for a condition on one key: any JSON value, the key's own values in the events (so that equality
/// holds sometimes) and those as floats, values of other keys, and [`edges`].
fn operand(own: Vec<Value>, all: Vec<Value>) -> BoxedStrategy<Value> {
    let pick = |values: Vec<Value>| if values.is_empty() { edges() } else { values };
    let own = prop::sample::select(pick(own));
    prop_oneof![
        2 => json_value(),
        3 => own.clone(),
        1 => own.prop_map(|v| as_float(&v)),
        1 => prop::sample::select(pick(all)),
        2 => prop::sample::select(edges()),
    ]
    .boxed()
}

/// A number as the float nearest to it (other values as they are).
fn as_float(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::Number(n.as_f64().and_then(Number::from_f64).unwrap_or_else(|| n.clone())),
        other => other.clone(),
    }
}

/// Every value of `key` (as `property` finds it) in the events.
fn values_of(events: &[StoredEvent], key: &str) -> Vec<Value> {
    let mut scratch = None;
    events.iter().filter_map(|e| crate::condition::property(&e.event, key, &mut scratch).cloned()).collect()
}

fn any_op() -> impl Strategy<Value = Op> {
    prop::sample::select(vec![Op::Eq, Op::Neq, Op::Lt, Op::Lte, Op::Gt, Op::Gte, Op::Exists])
}

fn case() -> impl Strategy<Value = (Vec<StoredEvent>, CodecSpec, GroupCountRequest)> {
    segment_events(48).prop_map(with_null_spills).prop_flat_map(|events| {
        let all: Vec<Value> = KEYS.iter().flat_map(|k| values_of(&events, k)).collect();
        let for_key = events.clone();
        let filter = prop::sample::select(KEYS.to_vec()).prop_flat_map(move |key| {
            (any_op(), operand(values_of(&for_key, key), all.clone())).prop_map(move |(op, value)| Filter {
                property: key.to_owned(),
                op,
                value,
            })
        });
        let group_by = prop_oneof![
            Just(GroupBy::None),
            Just(GroupBy::Event),
            prop::sample::select(KEYS.to_vec()).prop_map(|k| GroupBy::Property(k.to_owned())),
        ];
        let window = prop_oneof![
            3 => (-5..1005i64, 0..700i64).prop_map(|(from, len)| (from, from + len)),
            1 => Just((i64::MIN, i64::MAX)),
        ];
        let event = prop_oneof![2 => Just(None), 1 => prop::sample::select(vec!["a", "b", "zz"]).prop_map(Some)];
        let spec = (1..40usize, any::<bool>(), prop_oneof![0..4usize, Just(DEFAULT_MAX_PROPERTY_COLUMNS)]).prop_map(
            |(row_group_rows, dictionary, max_property_columns)| CodecSpec {
                row_group_rows,
                dictionary,
                max_property_columns,
                ..CodecSpec::default()
            },
        );
        let filters = prop::collection::vec(filter, 0..4);
        (Just(events), spec, window, event, filters, group_by).prop_map(
            |(events, spec, (from, to), event, filters, group_by)| {
                (events, spec, request(from, to, event, filters, group_by))
            },
        )
    })
}

/// Every operator with every edge operand on every key, on a few generated segments: the rare branches (an operand
/// above i64::MAX against an integer column, a boolean ordered) are taken for sure.
#[test]
fn every_operator_with_edge_operands_on_every_key() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let ops = [Op::Eq, Op::Neq, Op::Lt, Op::Lte, Op::Gt, Op::Gte, Op::Exists];
    let mut checked = 0;
    for (i, dictionary) in [true, false, true, true].into_iter().enumerate() {
        let events = with_null_spills(segment_events(48).new_tree(&mut runner).unwrap().current());
        let spec = CodecSpec { row_group_rows: 7 + i, dictionary, ..CodecSpec::default() };
        let bytes = encode(&info(), &events, &spec).unwrap();
        let (_, decoded) = decode(&bytes).unwrap();
        for key in KEYS {
            for op in ops {
                let own: Vec<Value> = values_of(&events, key).into_iter().take(3).collect();
                for value in edges().into_iter().chain(own.iter().cloned()).chain(own.iter().map(as_float)) {
                    for group_by in [GroupBy::None, GroupBy::Property("s".into())] {
                        let req = request(i64::MIN, i64::MAX, None, vec![f(key, op, value.clone())], group_by);
                        assert_eq!(counted(&bytes, &req), expected_of(&decoded, &req), "{req:?}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 4 * KEYS.len() * 7 * 16 * 2, "{checked}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn grouped_counts_equal_the_definition((events, spec, req) in case()) {
        let bytes = encode(&info(), &events, &spec).unwrap();
        prop_assert_eq!(counted(&bytes, &req), expected(&bytes, &req), "{:?}", req);
    }
}
