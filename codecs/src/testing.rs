//! Proptest strategies shared by the codec tests.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

use crate::event::{Event, StoredEvent, MAX_TIME_MS, MILLIS_THRESHOLD};

/// Mostly short strings, some with any unicode scalar (control characters, quotes, backslashes, astral planes),
/// now and then a long one (up to 2000 chars, several KB of UTF-8).
pub(crate) fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9 _$.-]{0,10}",
        3 => prop::collection::vec(any::<char>(), 0..16).prop_map(String::from_iter),
        1 => prop::collection::vec(any::<char>(), 0..2000).prop_map(String::from_iter),
    ]
}

/// A string of 1..=`max_chars` chars, each at most 4 bytes.
pub(crate) fn nonempty_text(max_chars: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::string::string_regex(&format!("[a-zA-Z0-9 _$.-]{{1,{max_chars}}}")).expect("valid regex"),
        1 => prop::collection::vec(any::<char>(), 1..=max_chars).prop_map(String::from_iter),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z$_]{0,6}",
        1 => prop::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter),
    ]
}

/// Any finite JSON number: i64, u64 (including above i64::MAX) or f64 (including -0.0, subnormals, extremes).
pub(crate) fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        (i64::MAX as u64..=u64::MAX).prop_map(Number::from),
        any::<f64>().prop_filter_map("JSON numbers are finite", Number::from_f64),
        (-1e6f64..1e6).prop_filter_map("JSON numbers are finite", Number::from_f64),
    ]
}

/// Any JSON value, nested objects and arrays included.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Properties without the keys that `parse_batch` lifts into fields; `"mixed"` takes a value of any type, so its
/// type differs from row to row.
pub(crate) fn properties() -> impl Strategy<Value = Map<String, Value>> {
    (prop::collection::btree_map(key(), json_value(), 0..5), prop::option::of(json_value())).prop_map(
        |(mut map, mixed)| {
            for reserved in ["time", "distinct_id", "$insert_id"] {
                map.remove(reserved);
            }
            let mut properties: Map<String, Value> = map.into_iter().collect();
            if let Some(mixed) = mixed {
                properties.insert("mixed".to_owned(), mixed);
            }
            properties
        },
    )
}

/// Any event the row format must store, valid for `/import` or not (empty strings, any time).
pub(crate) fn any_event() -> impl Strategy<Value = Event> {
    (text(), any::<i64>(), text(), text(), properties()).prop_map(
        |(event, time_ms, distinct_id, insert_id, properties)| Event {
            event,
            time_ms,
            distinct_id,
            insert_id,
            properties,
        },
    )
}

/// An event that `parse_batch` accepts and that round-trips through `to_mixpanel_json`: its time is at least
/// `MILLIS_THRESHOLD` ms, so it is read back as milliseconds.
pub(crate) fn importable_event() -> impl Strategy<Value = Event> {
    (
        nonempty_text(60),
        MILLIS_THRESHOLD..=MAX_TIME_MS,
        prop_oneof![Just(String::new()), nonempty_text(60)],
        nonempty_text(32),
        properties(),
    )
        .prop_map(|(event, time_ms, distinct_id, insert_id, properties)| Event {
            event,
            time_ms,
            distinct_id,
            insert_id,
            properties,
        })
}

/// Stored events shaped like one segment: a few keys (`s`, `i`, `f`, `b`, `j`, `n`) that most events carry, each
/// mostly with one type of value (string, i64, float, bool, object/array, big u64 or null) and now and then any
/// value, on top of [`any_event`]'s random properties; event names mostly from a small set and times mostly in
/// `0..1000`, so that windows and names select some but not all events. Sequence numbers are unique, in shuffled
/// order.
pub(crate) fn segment_events(max_events: usize) -> impl Strategy<Value = Vec<StoredEvent>> {
    fn shared(key: &'static str, typical: BoxedStrategy<Value>) -> impl Strategy<Value = Option<(String, Value)>> {
        prop::option::weighted(0.75, prop_oneof![6 => typical, 1 => json_value()])
            .prop_map(move |v| v.map(|v| (key.to_owned(), v)))
    }
    let nested = prop_oneof![
        prop::collection::vec(json_value(), 0..3).prop_map(Value::Array),
        prop::collection::btree_map("[a-z]{0,3}", json_value(), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ];
    let shared_properties = (
        shared("s", text().prop_map(Value::String).boxed()),
        shared("i", any::<i64>().prop_map(Value::from).boxed()),
        shared("f", any::<f64>().prop_filter_map("finite", Number::from_f64).prop_map(Value::Number).boxed()),
        shared("b", any::<bool>().prop_map(Value::Bool).boxed()),
        shared("j", nested.boxed()),
        shared("n", prop_oneof![Just(Value::Null), (i64::MAX as u64 + 1..=u64::MAX).prop_map(Value::from)].boxed()),
    );
    let name = prop_oneof![3 => prop::sample::select(vec!["a", "b", "ab"]).prop_map(str::to_owned), 1 => text()];
    let time = prop_oneof![3 => 0..1000i64, 1 => any::<i64>()];
    let event = (any_event(), name, time, shared_properties).prop_map(|(mut event, name, time, (s, i, f, b, j, n))| {
        event.event = name;
        event.time_ms = time;
        for (key, value) in [s, i, f, b, j, n].into_iter().flatten() {
            event.properties.insert(key, value);
        }
        event
    });
    prop::collection::vec(event, 0..=max_events).prop_flat_map(|events| {
        let n = events.len() as u64;
        (Just(events), Just((0..n).map(|s| s * 7 + 3).collect::<Vec<_>>()).prop_shuffle()).prop_map(|(events, seqs)| {
            events.into_iter().zip(seqs).map(|(event, seq)| StoredEvent { seq, event }).collect()
        })
    })
}
