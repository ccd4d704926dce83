use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::*;
use crate::event::{derive_insert_id, parse_batch_rows, Event};
use crate::testing::json_value;

const LIMITS: BatchLimits = BatchLimits::MIXPANEL;
/// 2026-01-01T00:00:00Z.
const RECEIVED_MS: i64 = 1_767_225_600_000;

fn lenient() -> ParseOptions {
    ParseOptions { strict: false, defaults: RecordDefaults::default() }
}

fn track_defaults(ip: Option<&str>) -> RecordDefaults {
    let mut properties = Map::new();
    if let Some(ip) = ip {
        properties.insert("ip".into(), json!(ip));
    }
    RecordDefaults { time_ms: Some(RECEIVED_MS), properties }
}

fn parse(records: &Value, options: &ParseOptions) -> Result<ParsedBatch, BatchError> {
    parse_batch_rows_with(&serde_json::to_vec(records).unwrap(), &LIMITS, options)
}

fn events(parsed: &ParsedBatch) -> Vec<Event> {
    parsed.rows.to_events()
}

#[test]
fn lenient_keeps_the_valid_records_in_order_and_reports_the_others_by_index() {
    let body = json!([
        {"event": "a", "properties": {"time": 1_700_000_000, "$insert_id": "a"}},
        {"event": "", "properties": {"time": 1_700_000_000, "$insert_id": "bad-name"}},
        {"event": "c", "properties": {"time": 1_700_000_001, "$insert_id": "c"}},
        {"event": "d", "properties": {}},
        7,
        {"event": "f", "properties": {"time": 1_700_000_002, "$insert_id": "f"}},
    ]);
    let parsed = parse(&body, &lenient()).unwrap();
    let names: Vec<String> = events(&parsed).into_iter().map(|e| e.event).collect();
    assert_eq!(names, ["a", "c", "f"]);
    let failed: Vec<(usize, &str)> = parsed.rejected.iter().map(|r| (r.index, r.field.as_str())).collect();
    assert_eq!(failed, [(1, "event"), (3, "properties.time"), (4, "")]);
    assert_eq!(parsed.rejected[0].insert_id, "bad-name");
    // Strict refuses the same body whole, with the same records listed.
    match parse(&body, &ParseOptions::default()) {
        Err(BatchError::Invalid(records)) => assert_eq!(records, parsed.rejected),
        other => panic!("strict should refuse the batch: {other:?}"),
    }
}

#[test]
fn lenient_still_refuses_a_batch_whose_records_cannot_be_told_apart() {
    let opts = lenient();
    let limits = BatchLimits { max_events: 2, ..LIMITS };
    assert!(matches!(parse_batch_rows_with(b"[{\"event\":", &LIMITS, &opts), Err(BatchError::Malformed(_))));
    assert!(matches!(parse_batch_rows_with(b"  ", &LIMITS, &opts), Err(BatchError::Empty)));
    assert!(matches!(parse_batch_rows_with(b"[1,2,3]", &limits, &opts), Err(BatchError::TooManyEvents { .. })));
    let small = BatchLimits { max_bytes: 8, ..LIMITS };
    assert!(matches!(parse_batch_rows_with(b"[1,2,3,4,5]", &small, &opts), Err(BatchError::TooLarge { .. })));
}

#[test]
fn a_missing_or_null_time_takes_the_default_and_a_given_one_is_kept() {
    let body = json!([
        {"event": "none", "properties": {"distinct_id": "u"}},
        {"event": "null", "properties": {"time": null}},
        {"event": "given", "properties": {"time": 1_700_000_000}},
    ]);
    let parsed = parse(&body, &ParseOptions { strict: true, defaults: track_defaults(None) }).unwrap();
    let got: Vec<(String, i64)> = events(&parsed).into_iter().map(|e| (e.event, e.time_ms)).collect();
    assert_eq!(got, [("none".into(), RECEIVED_MS), ("null".into(), RECEIVED_MS), ("given".into(), 1_700_000_000_000)]);
    for e in events(&parsed) {
        assert!(!e.properties.contains_key("time"), "time is a field, never a property: {e:?}");
    }
}

#[test]
fn a_bad_time_is_still_an_error_with_a_default() {
    let body = json!([{"event": "e", "properties": {"time": "yesterday"}}]);
    match parse(&body, &ParseOptions { strict: true, defaults: track_defaults(None) }) {
        Err(BatchError::Invalid(records)) => assert_eq!(records[0].field, "properties.time"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn default_properties_are_added_only_where_missing_and_count_towards_the_limit() {
    let body = json!([
        {"event": "e", "properties": {"time": 1_700_000_000}},
        {"event": "e", "properties": {"time": 1_700_000_000, "ip": "10.0.0.9"}},
    ]);
    let parsed = parse(&body, &ParseOptions { strict: true, defaults: track_defaults(Some("127.0.0.1")) }).unwrap();
    let ips: Vec<Value> = events(&parsed).into_iter().map(|e| e.properties["ip"].clone()).collect();
    assert_eq!(ips, [json!("127.0.0.1"), json!("10.0.0.9")]);
    // Three properties allowed: time, distinct_id and one more. The added ip is the fourth.
    let limits = BatchLimits { max_properties: 3, ..LIMITS };
    let body = json!([{"event": "e", "properties": {"time": 1_700_000_000, "distinct_id": "u", "k": 1}}]);
    let opts = ParseOptions { strict: true, defaults: track_defaults(Some("127.0.0.1")) };
    let err = parse_batch_rows_with(&serde_json::to_vec(&body).unwrap(), &limits, &opts).unwrap_err();
    assert!(matches!(err, BatchError::Invalid(ref r) if r[0].limit() == Some("too_many_properties")), "{err:?}");
    // A default time counts too: without a time, time + distinct_id + k is three.
    let body = json!([{"event": "e", "properties": {"distinct_id": "u", "k": 1}}]);
    let opts = ParseOptions { strict: true, defaults: track_defaults(None) };
    assert!(parse_batch_rows_with(&serde_json::to_vec(&body).unwrap(), &limits, &opts).is_ok());
    let body = json!([{"event": "e", "properties": {"distinct_id": "u", "k": 1, "l": 2}}]);
    assert!(parse_batch_rows_with(&serde_json::to_vec(&body).unwrap(), &limits, &opts).is_err());
}

#[test]
fn the_derived_insert_id_covers_the_filled_in_values() {
    let body = json!([{"event": "e", "properties": {"distinct_id": "u", "k": 1}}]);
    let parsed = parse(&body, &ParseOptions { strict: true, defaults: track_defaults(Some("127.0.0.1")) }).unwrap();
    let e = &events(&parsed)[0];
    let mut properties = Map::new();
    properties.insert("ip".into(), json!("127.0.0.1"));
    properties.insert("k".into(), json!(1));
    assert_eq!(e.insert_id, derive_insert_id("e", "u", RECEIVED_MS, &properties));
    // The same event sent again at the same receive time is the same event (deduplicated); later, another.
    let again = parse(&body, &ParseOptions { strict: true, defaults: track_defaults(Some("127.0.0.1")) }).unwrap();
    assert_eq!(events(&again)[0].insert_id, e.insert_id);
    let later = RecordDefaults { time_ms: Some(RECEIVED_MS + 1), ..track_defaults(Some("127.0.0.1")) };
    let later = parse(&body, &ParseOptions { strict: true, defaults: later }).unwrap();
    assert_ne!(events(&later)[0].insert_id, e.insert_id);
}

proptest! {
    /// Strict and with nothing to fill in, the options change nothing: the same rows, or the same error, as
    /// `parse_batch_rows`. Lenient accepts exactly the records strict would list as valid.
    #[test]
    fn default_options_agree_with_parse_batch_rows(records in proptest::collection::vec(record(), 0..8)) {
        let body = serde_json::to_vec(&records).unwrap();
        let plain = parse_batch_rows(&body, &LIMITS);
        let with = parse_batch_rows_with(&body, &LIMITS, &ParseOptions::default());
        match (&plain, &with) {
            (Ok(a), Ok(b)) => {
                prop_assert_eq!(a.to_events(), b.rows.to_events());
                prop_assert!(b.rejected.is_empty());
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            _ => prop_assert!(false, "disagree: {:?} vs {:?}", plain.is_ok(), with.is_ok()),
        }
        let loose = parse_batch_rows_with(&body, &LIMITS, &lenient()).unwrap();
        let valid: Vec<Value> = records
            .iter()
            .enumerate()
            .filter(|(i, _)| !loose.rejected.iter().any(|r| r.index == *i))
            .map(|(_, r)| r.clone())
            .collect();
        let alone = parse_batch_rows(&serde_json::to_vec(&valid).unwrap(), &LIMITS).unwrap();
        prop_assert_eq!(alone.to_events(), loose.rows.to_events());
        prop_assert_eq!(loose.rows.len() + loose.rejected.len(), records.len());
    }
}

/// A record that is valid about half of the time.
fn record() -> impl Strategy<Value = Value> {
    let time = prop_oneof![Just(json!(1_700_000_000)), Just(json!(-1)), Just(Value::Null), Just(json!("x"))];
    let name = prop_oneof![Just(json!("e")), Just(json!("")), Just(json!(3))];
    (name, time, json_value(), any::<bool>()).prop_map(|(name, time, extra, with_id)| {
        let mut properties = json!({"k": extra});
        if !time.is_null() {
            properties["time"] = time;
        }
        if with_id {
            properties["$insert_id"] = json!("id");
        }
        json!({"event": name, "properties": properties})
    })
}
