//! The per-event limits and the record-at-a-time reference ([`super::scan`]): hostile bodies are refused with the
//! error that names the limit, the fast path never accepts what they refuse, and the scanner answers what a
//! whole-body `serde_json` parse answers (accept, or the same syntax error at the same position).

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::testing::importable_event;

const LIMITS: BatchLimits = BatchLimits::MIXPANEL;

/// A valid record with `extra` properties `k0..` and the given name for one more.
fn record_with(extra: usize, name: &str) -> Value {
    let mut properties = serde_json::Map::new();
    properties.insert("time".into(), json!(1_700_000_000));
    properties.insert("distinct_id".into(), json!("u1"));
    for i in 0..extra {
        properties.insert(format!("k{i}"), json!(i));
    }
    properties.insert(name.to_owned(), json!(true));
    json!({"event": "e", "properties": properties})
}

/// Both entry points on `body`: equal results (the fast path agrees or gives up); returns `parse_batch`'s.
fn both(body: &[u8], limits: &BatchLimits) -> Result<Vec<Event>, BatchError> {
    let events = parse_batch(body, limits);
    assert_eq!(parse_batch_rows(body, limits).map(|rows| rows.to_events()), events);
    assert_eq!(parse_batch_reference(body, limits), events);
    events
}

fn only_error(result: Result<Vec<Event>, BatchError>) -> RecordError {
    match result {
        Err(BatchError::Invalid(mut errors)) if errors.len() == 1 => errors.remove(0),
        other => panic!("expected one invalid record, got {other:?}"),
    }
}

#[test]
fn properties_per_event_are_capped_counting_every_key() {
    // time + distinct_id + 252 + 1 = 255: accepted.
    let at_limit = serde_json::to_vec(&json!([record_with(252, "last")])).unwrap();
    assert_eq!(both(&at_limit, &LIMITS).unwrap()[0].properties.len(), 253);
    // With $insert_id it is one more: 256.
    let mut over = record_with(252, "last");
    over["properties"]["$insert_id"] = json!("id-1");
    let body = serde_json::to_vec(&json!([record_with(1, "x"), over])).unwrap();
    let error = only_error(both(&body, &LIMITS));
    assert_eq!((error.index, error.field.as_str(), error.insert_id.as_str()), (1, "properties", "id-1"));
    assert_eq!(error.message, "has 256 properties, over the limit of 255 per event");
    assert_eq!(error.limit(), Some("too_many_properties"));
}

#[test]
fn long_property_names_are_refused_and_shortened_in_the_message() {
    let ok = serde_json::to_vec(&json!([record_with(0, &"n".repeat(255))])).unwrap();
    assert!(both(&ok, &LIMITS).is_ok());
    let long = "é".repeat(200); // 400 bytes
    let body = serde_json::to_vec(&json!([record_with(0, &long)])).unwrap();
    let error = only_error(both(&body, &LIMITS));
    assert_eq!(error.field, "properties");
    assert!(error.message.starts_with("has a property name of 400 bytes, over the limit of 255 bytes: "), "{error:?}");
    assert!(error.message.len() < 160, "the name is shortened: {}", error.message);
    assert_eq!(error.limit(), Some("property_name_too_long"));
}

#[test]
fn events_over_the_byte_limit_are_refused_without_being_parsed() {
    let limits = BatchLimits { max_event_bytes: 200, ..LIMITS };
    let small = record_with(0, "a");
    let big = json!({"event": "e", "properties": {"time": 1, "blob": "x".repeat(300)}});
    let big_len = serde_json::to_string(&big).unwrap().len();
    for ndjson in [false, true] {
        let body = if ndjson {
            format!("{small}\n  {big}  \n").into_bytes()
        } else {
            format!("[{small}, {big}]").into_bytes()
        };
        let error = only_error(both(&body, &limits));
        assert_eq!((error.index, error.field.as_str()), (1, ""));
        assert_eq!(
            error.message,
            format!("the event is {big_len} bytes of JSON, over the limit of 200 bytes per event")
        );
        assert_eq!(error.limit(), Some("event_too_large"));
    }
    // Other errors are not limits.
    let other = only_error(both(br#"[{"event":"e","properties":{}}]"#, &limits));
    assert_eq!(other.limit(), None);
    // Exactly at the limit is accepted.
    let exact = BatchLimits { max_event_bytes: big_len, ..LIMITS };
    assert!(both(format!("[{big}]").as_bytes(), &exact).is_ok());
}

#[test]
fn a_huge_array_is_counted_not_materialized() {
    // The issue's body: five million zeros. The reference scans them as borrowed slices and answers the count.
    let body = format!("[{}0]", "0,".repeat(4_999_999));
    let limits = BatchLimits { max_bytes: body.len(), ..LIMITS };
    assert_eq!(
        parse_batch_rows(body.as_bytes(), &limits),
        Err(BatchError::TooManyEvents { limit: 2000, got: 5_000_000 })
    );
    // A syntax error after the limit still wins, as with a whole-body parse.
    let broken = format!("[{}0,]", "0,".repeat(3000));
    assert!(matches!(both(broken.as_bytes(), &LIMITS), Err(BatchError::Malformed(m)) if m.contains("trailing comma")));
}

#[test]
fn value_level_errors_keep_their_position_in_the_body() {
    for body in [
        "[\n {\"event\":\"e\",\"properties\":{\"time\":1e400}}]",
        "[{\"event\":\"e\",\n\"properties\":{\"a\":\n [1e999]}}]",
    ] {
        let expected = serde_json::from_slice::<Vec<Value>>(body.as_bytes()).unwrap_err().to_string();
        assert_eq!(both(body.as_bytes(), &LIMITS), Err(BatchError::Malformed(expected)));
    }
    let expected = serde_json::from_slice::<Value>(b" {\"a\":1e400}").unwrap_err();
    assert_eq!(
        both(b"{\"event\":\"e\",\"properties\":{\"time\":1}}\n {\"a\":1e400}\n", &LIMITS),
        Err(BatchError::Malformed(format!("line 2, column {}: number out of range", expected.column())))
    );
}

/// Bytes that make JSON interesting when inserted: structure, escapes, numbers.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop::sample::select(b"[]{},:\"\\0-1e.+ \nabtn\x7f".to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Differential against serde_json's whole-body parse (what the reference did before it scanned record by
    /// record): the same bodies are malformed, with the same message, and the others are arrays of that many values.
    #[test]
    fn the_scanner_agrees_with_a_whole_body_parse(
        events in prop::collection::vec(importable_event(), 0..4),
        edits in prop::collection::vec((0..3u8, any::<prop::sample::Index>(), interesting_byte()), 0..4),
    ) {
        let records: Vec<Value> = events.iter().map(Event::to_mixpanel_json).collect();
        let mut body = serde_json::to_vec(&records).unwrap();
        for (kind, at, byte) in edits {
            let at = at.index(body.len() + 1);
            match kind {
                0 => body.insert(at, byte),
                1 if at < body.len() => { body.remove(at); }
                _ if at < body.len() => body[at] = byte,
                _ => {}
            }
        }
        let whole = serde_json::from_slice::<Vec<Value>>(&body);
        let ours = parse_batch_reference(&body, &LIMITS);
        let starts_as_array = body.iter().find(|b| !b" \t\n\r".contains(b)) == Some(&b'[');
        if starts_as_array {
            match (&whole, &ours) {
                (Err(e), got) => prop_assert_eq!(got, &Err(BatchError::Malformed(e.to_string())), "body {:?}", String::from_utf8_lossy(&body)),
                (Ok(values), Ok(events)) => prop_assert_eq!(values.len(), events.len()),
                (Ok(values), Err(BatchError::Invalid(errors))) => prop_assert!(errors.iter().all(|e| e.index < values.len())),
                (Ok(_), Err(other)) => prop_assert!(false, "a parsable array was refused as a whole: {other:?}"),
            }
        }
        // Whatever the reference says, the fast path and both entry points say the same.
        prop_assert_eq!(parse_batch(&body, &LIMITS), ours);
    }
}
