//! The reference path's reading of a body, one record at a time: counts and refuses as it scans.
//!
//! Why it exists: the reference used to parse a whole JSON array into a `Vec<Value>` before it checked the event
//! count, so a 10 KB gzip of `[0,0,0,...]` (five million elements) cost hundreds of MB per request before its 413.
//! Here a first pass reads the whole array through the same serde_json paths a `Value` takes (so with the same
//! errors at the same positions) but keeps nothing, and counts its elements; a body over `max_events` is refused
//! there. Only then is each record taken as a borrowed [`RawValue`] (a slice of the body: no allocation), its size
//! checked, and parsed into a `Value`, validated and dropped. So the memory of a request never depends on more than
//! one record of at most `max_event_bytes`.
//!
//! What a caller sees is what the whole-body parse gave: syntax errors anywhere win (as [`BatchError::Malformed`],
//! with the same message and position), then the count, then the records' own errors (now including the size of
//! a record, which is never parsed when over the limit).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use super::{check_count, error_without_position, is_json_whitespace, BatchError, BatchLimits};

/// One record as the scanner hands it over.
pub(super) enum Record {
    /// The record's JSON text, parsed.
    Value(Value),
    /// The record's JSON text is this many bytes, over [`BatchLimits::max_event_bytes`]: it was not parsed.
    TooLarge(usize),
}

/// Calls `on_record(index, record)` for each of the first `max_events` records of `body` in order, and returns
/// the number of records. Errors: the body's size, emptiness, syntax and count, as [`super::parse_batch`]
/// documents them; a syntax error comes before a count error, and both before anything `on_record` is given
/// (the caller must hold its verdict on the records until this returns `Ok`).
pub(super) fn for_each_record(
    body: &[u8],
    limits: &BatchLimits,
    mut on_record: impl FnMut(usize, Record),
) -> Result<usize, BatchError> {
    if body.len() > limits.max_bytes {
        return Err(BatchError::TooLarge { limit: limits.max_bytes, got: body.len() });
    }
    let Some(first) = body.iter().copied().find(|b| !is_json_whitespace(*b)) else {
        return Err(BatchError::Empty);
    };
    if first == b'[' {
        // Pass 1: syntax and count, exactly as a whole-body parse into `Vec<Value>` would fail, nothing kept.
        let count = serde_json::from_slice::<CheckedArray>(body).map_err(|e| BatchError::Malformed(e.to_string()))?.0;
        check_count(count, limits)?;
        // Pass 2: the body is valid JSON of at most `max_events` records; each as a borrowed slice, then parsed.
        let records: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| BatchError::Malformed(e.to_string()))?;
        for (index, raw) in records.into_iter().enumerate() {
            on_record(index, parsed(raw, limits).map_err(|e| BatchError::Malformed(e.to_string()))?);
        }
        Ok(count)
    } else {
        for_each_line(body, limits, on_record)
    }
}

/// A record's value, unless its text is over the per-event limit (then it is not parsed).
fn parsed(raw: &RawValue, limits: &BatchLimits) -> Result<Record, serde_json::Error> {
    let text = raw.get();
    if text.len() > limits.max_event_bytes {
        return Ok(Record::TooLarge(text.len()));
    }
    serde_json::from_str(text).map(Record::Value)
}

/// NDJSON: non-blank lines are counted before any is parsed (as before), then read one at a time.
fn for_each_line(
    body: &[u8],
    limits: &BatchLimits,
    mut on_record: impl FnMut(usize, Record),
) -> Result<usize, BatchError> {
    let is_blank = |line: &[u8]| line.iter().all(|b| is_json_whitespace(*b));
    let lines = || body.split(|b| *b == b'\n').enumerate().filter(|(_, line)| !is_blank(line));
    let count = lines().count();
    check_count(count, limits)?;
    for (index, (i, line)) in lines().enumerate() {
        let malformed = |e: serde_json::Error| {
            BatchError::Malformed(format!("line {}, column {}: {}", i + 1, e.column(), error_without_position(&e)))
        };
        // Checked first, so the error (and its column) is the one parsing the line into a `Value` gives.
        serde_json::from_slice::<Checked>(line).map_err(malformed)?;
        let raw: &RawValue = serde_json::from_slice(line).map_err(malformed)?;
        on_record(index, parsed(raw, limits).map_err(malformed)?);
    }
    Ok(count)
}

/// Any JSON value, read through the same paths of serde_json as a `Value` (so with the same errors: string
/// escapes and UTF-8, numbers beyond `f64`, nesting depth), and not kept.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_key::<Checked>()?.is_some() {
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
}

/// The top-level array, checked element by element and counted.
struct CheckedArray(usize);

impl<'de> Deserialize<'de> for CheckedArray {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Count;
        impl<'de> Visitor<'de> for Count {
            type Value = CheckedArray;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CheckedArray, A::Error> {
                let mut count = 0;
                while seq.next_element::<Checked>()?.is_some() {
                    count += 1;
                }
                Ok(CheckedArray(count))
            }
        }
        d.deserialize_seq(Count)
    }
}
