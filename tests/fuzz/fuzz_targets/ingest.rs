//! Fuzz target: the `/import` body, as the handler reads it (`daemon/src/server/http/import.rs`): optionally
//! gunzipped, then validated by `parse_batch_rows` (the hand-written fast path, falling back to the serde_json
//! reference).
//!
//! The first input byte chooses the encoding and the limits; the rest is the body:
//! - bits 0-1: `0`/`3` the body as sent (a JSON array when it starts with `[`, else NDJSON); `1` the body gzipped
//!   here (two gzip members when bit 4 is set), which must decode back to exactly the body; `2` the body is itself
//!   the gzip stream a client sent (any bytes);
//! - bits 2-3: one of [`LIMITS`], from Mixpanel's to tiny ones, so that every per-batch and per-event limit is hit.
//!
//! Properties, beyond "no panic":
//! - the fast path and the reference agree (`parse_batch`, `parse_batch_rows` and `parse_batch_reference` give
//!   the same events or the same error);
//! - an error is the one its variant documents (a too-large body is over `max_bytes`, record errors are in order
//!   and point at records that exist, ...);
//! - accepted events keep every limit and rule: at most `max_events`, each record's JSON text at most
//!   `max_event_bytes` (measured here, independently, with serde_json's `RawValue`), at most `max_properties`
//!   properties with names of at most `max_property_name_bytes`, event names, ids and times in their ranges;
//! - accepted events, sent again in Mixpanel's shape (as an array and as NDJSON), are accepted again as the same
//!   events; their hot-tier frames (`FrameBody::encode_rows`) are the ones `FrameBody::encode` writes for the
//!   events, and decode back to them;
//! - a body and the same records in the other shape (array <-> NDJSON) give the same events or record errors.

#![no_main]

use std::io::Write as _;

use flate2::write::GzEncoder;
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use serde_json::Value;
use tierd_codecs::event::{
    MAX_DISTINCT_ID_BYTES, MAX_EVENT_NAME_BYTES, MAX_INSERT_ID_BYTES, MAX_TIME_MS, MILLIS_THRESHOLD,
};
use tierd_codecs::rows::decode_frames;
use tierd_codecs::{parse_batch, parse_batch_reference, parse_batch_rows, BatchError, BatchLimits, Event, FrameBody};
use tierd_daemon::server::http::gunzip;

/// Mixpanel's limits, and smaller ones that a fuzzer's short inputs reach.
const LIMITS: [BatchLimits; 4] = [
    BatchLimits::MIXPANEL,
    BatchLimits {
        max_events: 4,
        max_bytes: 4096,
        max_properties: 6,
        max_event_bytes: 512,
        max_property_name_bytes: 16,
    },
    BatchLimits { max_events: 2, max_bytes: 1024, max_properties: 3, max_event_bytes: 128, max_property_name_bytes: 4 },
    BatchLimits { max_events: 1, max_bytes: 256, max_properties: 1, max_event_bytes: 64, max_property_name_bytes: 1 },
];

/// No limit at all: for bodies written here from accepted events, which may be longer than what was sent (lifted
/// keys written out, canonical numbers).
const UNLIMITED: BatchLimits = BatchLimits {
    max_events: usize::MAX,
    max_bytes: usize::MAX,
    max_properties: usize::MAX,
    max_event_bytes: usize::MAX,
    max_property_name_bytes: usize::MAX,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let limits = LIMITS[usize::from(selector >> 2) % LIMITS.len()];
    match selector & 3 {
        1 => {
            let sent = gzipped(rest, selector & 0x10 != 0);
            match gunzip(&sent, limits.max_bytes) {
                Ok(decoded) => assert_eq!(decoded, rest, "a gzip body did not decode to what was compressed"),
                Err(None) => {
                    assert!(rest.len() > limits.max_bytes, "a gzip body within the limit was refused as over it")
                }
                Err(Some(e)) => panic!("a well-formed gzip body was refused: {}", e.message),
            }
            check_body(rest, &limits);
        }
        2 => match gunzip(rest, limits.max_bytes) {
            Ok(decoded) => {
                assert!(decoded.len() <= limits.max_bytes, "gunzip gave {} bytes over its limit", decoded.len());
                check_body(&decoded, &limits);
            }
            Err(None) => {}
            Err(Some(e)) => {
                assert_eq!(e.status, 400);
                assert!(e.message.starts_with("body is not valid gzip"), "{}", e.message);
            }
        },
        _ => check_body(rest, &limits),
    }
});

/// `body` gzipped, as one member or as two (the handler reads every member, as `gzip -c a b` writes them).
fn gzipped(body: &[u8], two_members: bool) -> Vec<u8> {
    let split = if two_members { body.len() / 2 } else { body.len() };
    let mut out = Vec::new();
    for part in [&body[..split], &body[split..]] {
        if part.is_empty() && !out.is_empty() {
            continue;
        }
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(part).expect("writing into a Vec");
        out.extend(encoder.finish().expect("writing into a Vec"));
    }
    out
}

fn check_body(body: &[u8], limits: &BatchLimits) {
    let reference = parse_batch_reference(body, limits);
    assert_eq!(parse_batch(body, limits), reference, "the fast path and the reference disagree");
    let rows = parse_batch_rows(body, limits);
    assert_eq!(
        rows.as_ref().map(|rows| rows.to_events()).map_err(Clone::clone),
        reference,
        "parse_batch_rows and the reference disagree"
    );
    match &reference {
        Ok(events) => {
            check_accepted(body, limits, events);
            let rows = rows.expect("agreed above");
            let row_refs: Vec<_> = rows.iter().collect();
            check_frames(FrameBody::encode_rows(&row_refs), FrameBody::encode(events), events);
        }
        Err(error) => check_error(body, limits, error),
    }
    check_other_shape(body, limits);
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_array(body: &[u8]) -> bool {
    body.iter().find(|b| !is_whitespace(**b)) == Some(&b'[')
}

/// The JSON text of each record of a body (without surrounding whitespace), read with serde_json alone; `None` when
/// it is not a well-formed array or NDJSON.
fn record_texts(body: &[u8]) -> Option<Vec<&str>> {
    if is_array(body) {
        let records: Vec<&RawValue> = serde_json::from_slice(body).ok()?;
        Some(records.into_iter().map(RawValue::get).collect())
    } else {
        body.split(|b| *b == b'\n')
            .filter(|line| !line.iter().all(|b| is_whitespace(*b)))
            .map(|line| serde_json::from_slice::<&RawValue>(line).ok().map(RawValue::get))
            .collect()
    }
}

fn check_error(body: &[u8], limits: &BatchLimits, error: &BatchError) {
    match error {
        BatchError::TooLarge { limit, got } => {
            assert_eq!((*limit, *got), (limits.max_bytes, body.len()));
            assert!(got > limit);
        }
        BatchError::Empty => assert!(body.iter().all(|b| is_whitespace(*b)), "a non-blank body was called empty"),
        BatchError::TooManyEvents { limit, got } => {
            assert_eq!(*limit, limits.max_events);
            assert!(got > limit);
            if let Some(records) = record_texts(body) {
                assert_eq!(records.len(), *got, "the count of records is wrong");
            }
        }
        BatchError::Malformed(message) => {
            assert!(!message.is_empty());
            assert!(
                body.len() <= limits.max_bytes && body.iter().any(|b| !is_whitespace(*b)),
                "a malformed body is first too large or empty"
            );
        }
        BatchError::Invalid(errors) => {
            let records = record_texts(body).expect("record errors are only given for well-formed bodies");
            assert!(records.len() <= limits.max_events);
            assert!(!errors.is_empty());
            assert!(errors.windows(2).all(|w| w[0].index < w[1].index), "record errors out of order: {errors:?}");
            for e in errors {
                assert!(e.index < records.len(), "a record error points past the records: {e:?}");
                assert!(!e.message.is_empty());
                if e.limit() == Some("event_too_large") {
                    assert!(records[e.index].len() > limits.max_event_bytes, "refused as too large: {e:?}");
                }
            }
        }
        other => panic!("an error parse_batch does not document: {other:?}"),
    }
}

fn check_accepted(body: &[u8], limits: &BatchLimits, events: &[Event]) {
    assert!(body.len() <= limits.max_bytes);
    assert!(events.len() <= limits.max_events, "{} events accepted over the limit", events.len());
    let records = record_texts(body).expect("an accepted body is well-formed JSON");
    assert_eq!(records.len(), events.len(), "accepted events do not match the records one to one");
    for text in &records {
        assert!(text.len() <= limits.max_event_bytes, "a record of {} bytes was accepted", text.len());
    }
    for e in events {
        assert!(!e.event.is_empty() && e.event.len() <= MAX_EVENT_NAME_BYTES, "event name {:?}", e.event);
        assert!(e.distinct_id.len() <= MAX_DISTINCT_ID_BYTES);
        assert!(!e.insert_id.is_empty() && e.insert_id.len() <= MAX_INSERT_ID_BYTES);
        assert!((0..=MAX_TIME_MS).contains(&e.time_ms), "time {}", e.time_ms);
        assert!(e.properties.len() <= limits.max_properties, "{} properties accepted", e.properties.len());
        for key in e.properties.keys() {
            assert!(key.len() <= limits.max_property_name_bytes, "property name {key:?} accepted");
            assert!(!matches!(key.as_str(), "time" | "distinct_id" | "$insert_id"), "lifted key {key:?} kept");
        }
    }
    // Sent again, in both shapes: the same events.
    let resent: Vec<String> = events.iter().map(|e| resend(e).to_string()).collect();
    let array = format!("[{}]", resent.join(","));
    let ndjson: String = resent.iter().map(|r| format!("{r}\n")).collect();
    // (No events: an empty NDJSON body is refused as empty, unlike `[]`.)
    let shapes = if events.is_empty() { vec![(array, "array")] } else { vec![(array, "array"), (ndjson, "NDJSON")] };
    for (body, shape) in shapes {
        match parse_batch(body.as_bytes(), &UNLIMITED) {
            Ok(again) => assert_eq!(again, events, "accepted events sent again read back differently: {body}"),
            // A record nested right up to serde_json's depth limit on its own line is one level too deep inside an
            // array: that limit is serde_json's, and the NDJSON resend is checked.
            Err(BatchError::Malformed(m)) if shape == "array" && m.starts_with("recursion limit exceeded") => {}
            Err(e) => panic!("accepted events sent again as {shape} were refused ({e}): {body}"),
        }
    }
}

/// An accepted event as a client sends it again: Mixpanel's shape, with a time before [`MILLIS_THRESHOLD`] ms
/// written as (float) seconds, since as milliseconds it would be read as seconds.
fn resend(event: &Event) -> Value {
    let mut record = event.to_mixpanel_json();
    if event.time_ms < MILLIS_THRESHOLD {
        record["properties"]["time"] = Value::from(event.time_ms as f64 / 1000.0);
    }
    record
}

/// The ingest path's frame (from rows) is the one written from the events, and decodes back to them.
fn check_frames(from_rows: FrameBody, from_events: FrameBody, events: &[Event]) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    from_rows.write_frame(7, &mut a);
    from_events.write_frame(7, &mut b);
    assert!(a == b, "the rows' frame differs from the events' frame");
    let stored = decode_frames(&a, 0).expect("a frame just written decodes");
    assert_eq!(stored.len(), events.len());
    for (i, (s, e)) in stored.iter().zip(events).enumerate() {
        assert_eq!(s.seq, 7 + i as u64);
        assert_eq!(&s.event, e, "a stored event read back differently");
    }
}

/// The same records in the other shape (array <-> NDJSON) are the same batch: same events, or same record errors,
/// or the same count over the limit. Only for bodies whose every record serde_json reads as one value in both
/// shapes (a malformed body has no other shape; nesting past serde_json's depth limit in an array may not).
fn check_other_shape(body: &[u8], limits: &BatchLimits) {
    let Some(records) = record_texts(body) else { return };
    // A body whose first record is an array is an array body, whatever follows (the documented detection rule).
    if records.first().is_none_or(|r| r.starts_with('[')) {
        return;
    }
    // Raw newlines in a record's text are whitespace between tokens (a string cannot hold one): a space is the same.
    let records: Vec<String> = records.iter().map(|r| r.replace('\n', " ")).collect();
    let array = format!("[{}]", records.join(","));
    let ndjson: String = records.iter().map(|r| format!("{r}\n")).collect();
    if serde_json::from_str::<Vec<Value>>(&array).is_err()
        || records.iter().any(|r| serde_json::from_str::<Value>(r).is_err())
    {
        return;
    }
    let any_size = BatchLimits { max_bytes: usize::MAX, ..*limits };
    let (from_array, from_ndjson) =
        (parse_batch(array.as_bytes(), &any_size), parse_batch(ndjson.as_bytes(), &any_size));
    assert_eq!(from_array, from_ndjson, "an array and NDJSON of the same records differ:\n{array}\n{ndjson}");
}
