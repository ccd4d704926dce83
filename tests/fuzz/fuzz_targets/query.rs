//! Fuzz target: the body of `POST /v1/query`, read by the handler's own `parse_query`
//! (`daemon/src/server/http/read.rs`), and the `where` conditions it yields, evaluated as the query engine and a
//! filtered delete evaluate them (`tierd_codecs::condition`, `tierd_codecs::RowFilter`).
//!
//! Properties, beyond "no panic":
//! - a refused body is a 400 with a message; an accepted one is a `QueryRequest` serde_json reads too, and the
//!   query is that request (project defaulted, filters with a property, `limit` at least 1, `group_by` as written);
//! - the request as the client writes it (`serde_json::to_vec(&QueryRequest)`) is parsed back to the same query;
//! - each condition is consistent on events made to hit its own value: `eq` holds and `neq` does not, `neq` is
//!   never `eq`, `lte`/`gte` are `lt`/`gt` or equal, and a value never both `lt` and `gt`;
//! - as a filtered delete (`RowFilter::Events`): it survives the JSON it is stored as, it matches exactly the events
//!   in its window, of its name, that every condition holds for, a reader that decodes only `properties()` gets the
//!   same answer, and a matched event's time range is never `Coverage::None`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tierd_codecs::condition::{Filter, Op};
use tierd_codecs::{Coverage, Event, RowFilter, StoredEvent, TimeRange};
use tierd_daemon::api::QueryRequest;
use tierd_daemon::server::http::parse_query;
use tierd_store::query::GroupBy;

fuzz_target!(|data: &[u8]| {
    let (query, limit) = match parse_query(data) {
        Ok(parsed) => parsed,
        Err(e) => {
            assert_eq!(e.status, 400, "a query body was refused with {}: {}", e.status, e.message);
            assert!(!e.message.is_empty());
            return;
        }
    };
    let request: QueryRequest = serde_json::from_slice(data).expect("an accepted query body is a QueryRequest");
    assert_eq!(query.project, request.project.clone().unwrap_or_else(|| "default".into()));
    assert_eq!((query.from_ms, query.to_ms), (request.from, request.to));
    assert_eq!(query.event, request.event);
    assert_eq!(limit, request.limit);
    assert_ne!(limit, Some(0), "a limit of 0 was accepted");
    assert_eq!(query.filters.len(), request.filters.len());
    for (f, w) in query.filters.iter().zip(&request.filters) {
        assert!(!f.property.is_empty(), "a condition without a property was accepted");
        assert_eq!((&f.property, f.op), (&w.property, w.op));
        assert_eq!(f.value, w.value.clone().unwrap_or(Value::Null));
    }
    match (&query.group_by, request.group_by.as_deref()) {
        (GroupBy::None, None) | (GroupBy::Event, Some("event")) => {}
        (GroupBy::Property(name), Some(text)) => {
            assert!(!name.is_empty());
            assert_eq!(text.strip_prefix("properties."), Some(name.as_str()));
        }
        (parsed, text) => panic!("group_by {text:?} was read as {parsed:?}"),
    }
    let written = serde_json::to_vec(&request).expect("a request serializes");
    match parse_query(&written) {
        Ok(again) => assert_eq!(again, (query.clone(), limit), "the query read back differently: {written:?}"),
        Err(e) => panic!("the client's text of an accepted query was refused ({}): {:?}", e.message, written),
    }
    // Validation never panics, whatever the window and project.
    let _ = query.validate();

    let events = probe_events(&query.filters, query.from_ms, query.to_ms, query.event.as_deref());
    for f in &query.filters {
        check_condition(f);
    }
    let delete = RowFilter::Events {
        event: query.event.clone(),
        from_ms: query.from_ms,
        to_ms: query.to_ms,
        conditions: query.filters.clone(),
        max_seq: u64::MAX,
    };
    let stored = serde_json::to_string(&delete).expect("a row filter serializes");
    let back: RowFilter = serde_json::from_str(&stored).expect("a stored row filter reads back");
    assert_eq!(back, delete, "a filtered delete read back differently: {stored}");
    let read = delete.properties();
    for event in events {
        let expected = (query.from_ms..query.to_ms).contains(&event.time_ms)
            && query.event.as_ref().is_none_or(|name| *name == event.event)
            && query.filters.iter().all(|f| f.matches(&event));
        let row = StoredEvent { seq: 1, event };
        let matched = delete.matches(&row);
        assert_eq!(matched, expected, "the filtered delete and the conditions disagree on {:?}", row.event);
        let mut projected = row.clone();
        projected.event.properties.retain(|key, _| read.contains(key));
        assert_eq!(delete.matches(&projected), matched, "properties() leaves out one the filter reads: {read:?}");
        if matched {
            let t = row.event.time_ms;
            assert_ne!(delete.coverage(Some(TimeRange { min_ms: t, max_ms: t })), Coverage::None);
        }
    }
});

/// A condition is consistent on an event whose property is the condition's own value.
fn check_condition(f: &Filter) {
    if matches!(f.property.as_str(), "time" | "distinct_id" | "$insert_id") {
        return; // lifted fields: the event's own fields, checked by the events of `probe_events`
    }
    let event = event_with(&f.property, f.value.clone(), 0);
    let with = |op: Op| Filter { op, ..f.clone() }.matches(&event);
    let comparable = matches!(f.value, Value::Number(_) | Value::String(_));
    assert!(with(Op::Eq), "a value is not eq to itself: {f:?}");
    assert!(!with(Op::Neq), "a value is neq to itself: {f:?}");
    assert_eq!(with(Op::Exists), !f.value.is_null());
    assert!(!with(Op::Lt) && !with(Op::Gt));
    assert_eq!(with(Op::Lte), comparable);
    assert_eq!(with(Op::Gte), comparable);
    // On any event: neq is not eq, lte is lt or eq (on comparable values), never both lt and gt.
    for other in
        [Value::Null, Value::from(0), Value::from(-1.5), Value::from(u64::MAX), Value::from(""), Value::from("m")]
    {
        let event = event_with(&f.property, other, 0);
        let with = |op: Op| Filter { op, ..f.clone() }.matches(&event);
        assert_ne!(with(Op::Eq), with(Op::Neq));
        assert!(!(with(Op::Lt) && with(Op::Gt)));
        if comparable {
            assert_eq!(with(Op::Lte), with(Op::Lt) || with(Op::Eq), "{f:?} on {event:?}");
            assert_eq!(with(Op::Gte), with(Op::Gt) || with(Op::Eq), "{f:?} on {event:?}");
        }
    }
}

fn event_with(property: &str, value: Value, time_ms: i64) -> Event {
    let mut properties = Map::new();
    properties.insert(property.to_owned(), value);
    Event { event: "e".into(), time_ms, distinct_id: "u".into(), insert_id: "i".into(), properties }
}

/// Events at the edges of the window, of the query's name and another, with each condition's property set to its
/// value (and lifted fields set from it when it fits), alone and all together.
fn probe_events(filters: &[Filter], from_ms: i64, to_ms: i64, event: Option<&str>) -> Vec<Event> {
    let times = [from_ms, to_ms, from_ms.saturating_sub(1), to_ms.saturating_sub(1), from_ms.saturating_add(1), 0];
    let names = [event.unwrap_or("e"), "other"];
    let mut all = Map::new();
    let mut base = Event {
        event: String::new(),
        time_ms: 0,
        distinct_id: "u".into(),
        insert_id: "i".into(),
        properties: Map::new(),
    };
    for f in filters {
        match (f.property.as_str(), &f.value) {
            ("time", v) => {
                if let Some(t) = v.as_i64() {
                    base.time_ms = t;
                }
            }
            ("distinct_id", Value::String(s)) => base.distinct_id = s.clone(),
            ("$insert_id", Value::String(s)) => base.insert_id = s.clone(),
            (p, v) => drop(all.insert(p.to_owned(), v.clone())),
        }
    }
    let mut out = Vec::new();
    for name in names {
        for (i, time_ms) in times.into_iter().chain([base.time_ms]).enumerate() {
            let mut e = Event { event: name.to_owned(), time_ms, ..base.clone() };
            e.properties = if i % 2 == 0 { all.clone() } else { Map::new() };
            out.push(e);
        }
        for f in filters {
            let mut e = event_with(&f.property, f.value.clone(), from_ms);
            e.event = name.to_owned();
            out.push(e);
        }
    }
    out
}
