//! The event model and validation of Mixpanel `/import` request bodies.
//!
//! A batch is validated as a whole: if any record is invalid, [`parse_batch`] returns every invalid record and
//! nothing of the batch is accepted.
//!
//! Validation has two implementations that must agree: the reference one (`parse_batch_reference`, values parsed
//! into `serde_json::Value`s, the definition of every rule and error) and a fast one (module `fast`, one pass over
//! the text, properties kept as canonical JSON text) that handles valid batches and defers everything else to the
//! reference. Their agreement is property-tested on arbitrary and malformed bodies.

use serde_json::{Map, Value};

use crate::hash::{KeyHasher, StreamedField};
use crate::json::GiveUp;

mod data;
mod fast;
mod options;
mod row_batch;
mod scan;

pub use data::{decode_data, DataError};
pub use options::{parse_batch_rows_with, ParseOptions, ParsedBatch, RecordDefaults};
pub use row_batch::{EventRow, RowBatch};

/// Longest accepted event name, in bytes.
pub const MAX_EVENT_NAME_BYTES: usize = 255;
/// Longest accepted `distinct_id`, in bytes (after a number is turned into its JSON text).
pub const MAX_DISTINCT_ID_BYTES: usize = 255;
/// Longest accepted `$insert_id`, in bytes.
pub const MAX_INSERT_ID_BYTES: usize = 128;
/// A `time` at or above this value is read as milliseconds since the epoch, below it as seconds (Mixpanel's rule).
/// `1e11` seconds is in the year 5138, `1e11` milliseconds is 1973-03-03T09:46:40Z.
pub const MILLIS_THRESHOLD: i64 = 100_000_000_000;
/// Latest accepted event time: 9999-12-31T23:59:59.999Z, in milliseconds since the epoch. The earliest is 0.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// One validated event, as tierd stores it.
///
/// `properties` holds every property of the request except the three that are lifted into fields
/// (`time`, `distinct_id`, `$insert_id`); values are kept as given (numbers keep their JSON type).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Non-empty, at most 255 bytes.
    pub event: String,
    /// Milliseconds since the Unix epoch (the request may give seconds or milliseconds).
    pub time_ms: i64,
    /// String or number in the request, stored as a string; empty when absent.
    pub distinct_id: String,
    /// At most 128 bytes; derived from the content (32 lowercase hex chars) when absent.
    pub insert_id: String,
    /// All other properties, in sorted key order.
    pub properties: Map<String, Value>,
}

/// An event with its ingest sequence number (assigned by the hot tier; later ingested = higher).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: u64,
    pub event: Event,
}

/// The time range of some events: the earliest and the latest event time, both inclusive. Where there may be no
/// events at all (an empty segment, a prefix of no rows), it is an `Option<TimeRange>`: both ends or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub min_ms: i64,
    pub max_ms: i64,
}

impl TimeRange {
    /// The range of `times`; `None` when there are none.
    pub fn of(times: impl IntoIterator<Item = i64>) -> Option<TimeRange> {
        times.into_iter().map(|t| TimeRange { min_ms: t, max_ms: t }).reduce(|a, b| a.including(b))
    }

    /// The smallest range holding both; `None` only when both are.
    pub fn union(a: Option<TimeRange>, b: Option<TimeRange>) -> Option<TimeRange> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.including(b)),
            (a, b) => a.or(b),
        }
    }

    fn including(self, other: TimeRange) -> TimeRange {
        TimeRange { min_ms: self.min_ms.min(other.min_ms), max_ms: self.max_ms.max(other.max_ms) }
    }
}

/// Request limits, as Mixpanel's `/import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_events: usize,
    pub max_bytes: usize,
    /// Most properties of one event, counting every key of its `properties` object (`time`, `distinct_id` and
    /// `$insert_id` included). Mixpanel: 255.
    pub max_properties: usize,
    /// Longest JSON text of one record (from its `{` to its `}`, as sent). Mixpanel: 1 MB.
    pub max_event_bytes: usize,
    /// Longest property name (a key of `properties`), in bytes. Mixpanel: 255 characters.
    pub max_property_name_bytes: usize,
}

impl BatchLimits {
    /// Mixpanel's documented limits: 2000 events and 10 MiB per request, 255 properties, 1 MiB and 255-byte
    /// property names per event.
    pub const MIXPANEL: BatchLimits = BatchLimits {
        max_events: 2000,
        max_bytes: 10 * 1024 * 1024,
        max_properties: 255,
        max_event_bytes: 1024 * 1024,
        max_property_name_bytes: 255,
    };
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self::MIXPANEL
    }
}

/// Why one record of a batch was rejected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordError {
    /// 0-based position of the record in the batch.
    pub index: usize,
    /// The record's `$insert_id` when it had a usable one, else empty.
    #[serde(rename = "$insert_id")]
    pub insert_id: String,
    /// The offending field, e.g. `properties.time` or `event`.
    pub field: String,
    pub message: String,
}

impl RecordError {
    /// Which per-event limit of [`BatchLimits`] refused the record, as a short label (`event_too_large`,
    /// `too_many_properties`, `property_name_too_long`); `None` for the other errors.
    pub fn limit(&self) -> Option<&'static str> {
        let m = self.message.as_str();
        match self.field.as_str() {
            "" if m.starts_with("the event is ") && m.ends_with(" bytes per event") => Some("event_too_large"),
            "properties" if m.starts_with("has a property name of ") => Some("property_name_too_long"),
            "properties" if m.starts_with("has ") && m.ends_with(" per event") => Some("too_many_properties"),
            _ => None,
        }
    }
}

/// Why a whole batch was rejected. Nothing of a rejected batch is ever written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    #[error("request body is empty; send a JSON array or NDJSON of events")]
    Empty,
    #[error("request body is {got} bytes, over the limit of {limit} bytes per request")]
    TooLarge { limit: usize, got: usize },
    #[error("request has {got} events, over the limit of {limit} events per request")]
    TooManyEvents { limit: usize, got: usize },
    #[error("malformed JSON: {0}")]
    Malformed(String),
    #[error("{} of the batch's records are invalid; nothing was imported", .0.len())]
    Invalid(Vec<RecordError>),
}

/// Validates a request body (a JSON array of events, or NDJSON with one event per line) against `limits`.
///
/// - A body over `limits.max_bytes` is [`BatchError::TooLarge`]; an empty or whitespace-only body is
///   [`BatchError::Empty`].
/// - If the first non-whitespace byte is `[`, the body is one JSON array of events; otherwise it is NDJSON, one JSON
///   object per line, blank lines ignored. Syntax errors are [`BatchError::Malformed`] (NDJSON errors name the
///   1-based line). An empty array `[]` is a valid batch of no events.
/// - More than `limits.max_events` events is [`BatchError::TooManyEvents`], checked before any record is validated
///   (for NDJSON, before any line is parsed, by counting non-blank lines).
/// - Every record is validated; if any is invalid the whole batch is [`BatchError::Invalid`] with the first problem
///   of every invalid record.
/// - Per record (errors of [`BatchError::Invalid`]): its JSON text is at most `limits.max_event_bytes` (a bigger one
///   is not even parsed), its `properties` object has at most `limits.max_properties` keys (the lifted ones
///   included) and no key longer than `limits.max_property_name_bytes`.
/// - Memory: at most one record's parsed `Value` exists at a time, and records past `limits.max_events` are only
///   counted ([`scan`]).
///
/// Record rules: `event` is a non-empty string of at most [`MAX_EVENT_NAME_BYTES`]; `properties` is an object;
/// `properties.time` is a non-negative integer or float, read as milliseconds when `>= 1e11`
/// ([`MILLIS_THRESHOLD`]) and as seconds otherwise (float seconds are rounded to the nearest millisecond), and must
/// fall within 1970..=9999; `properties.distinct_id` is a string or a number (kept as its JSON text), absent or null
/// meaning empty; `properties.$insert_id` is a string of 1..=[`MAX_INSERT_ID_BYTES`] bytes, derived from the content
/// ([`derive_insert_id`]) when absent or null. Other top-level keys are ignored.
///
/// Equivalent to `parse_batch_rows(body, limits).map(|rows| rows.to_events())`.
pub fn parse_batch(body: &[u8], limits: &BatchLimits) -> Result<Vec<Event>, BatchError> {
    match fast::parse_rows(body, limits) {
        Ok(rows) => Ok(rows.to_events()),
        Err(GiveUp) => parse_batch_reference(body, limits),
    }
}

/// Validates a request body exactly as [`parse_batch`] does (same accepted bodies, same errors), returning the events
/// in their stored form: properties as canonical JSON text rather than a `Map`.
///
/// This is the ingest path: validating and encoding a batch this way ([`crate::FrameBody::encode_rows`]) gives the
/// same frames, byte for byte, as [`parse_batch`] followed by [`crate::FrameBody::encode`], at a fraction of the
/// cost, because no `serde_json::Value` is built for any property.
pub fn parse_batch_rows(body: &[u8], limits: &BatchLimits) -> Result<RowBatch, BatchError> {
    match fast::parse_rows(body, limits) {
        Ok(rows) => Ok(rows),
        Err(GiveUp) => {
            // Row by row, so that no more than one record's `Value` tree exists at a time.
            let mut rows = RowBatch::default();
            reference_each(body, limits, |event| rows.push_event(&event))?;
            Ok(rows)
        }
    }
}

/// The reference implementation of [`parse_batch`]: parses the body into `serde_json::Value`s and validates them.
///
/// It is the definition of what a valid batch is and of every error: the fast path ([`fast`]) only returns rows for
/// bodies this accepts, with the same result, and defers to this for everything else. [`parse_batch`] is what
/// callers want; this is public so that the fuzz targets (`tests/fuzz`) can hold the two paths against each other.
pub fn parse_batch_reference(body: &[u8], limits: &BatchLimits) -> Result<Vec<Event>, BatchError> {
    let mut events = Vec::new();
    reference_each(body, limits, |event| events.push(event))?;
    Ok(events)
}

/// The reference, one record at a time ([`scan`]): `on_event` gets each valid event in order while no record was
/// invalid; the result says whether the batch as a whole is accepted (the caller drops what it got otherwise). At
/// most one record's `Value` exists at a time.
fn reference_each(body: &[u8], limits: &BatchLimits, mut on_event: impl FnMut(Event)) -> Result<(), BatchError> {
    let mut errors = Vec::new();
    let defaults = RecordDefaults::default();
    scan::for_each_record(body, limits, |index, record| match checked_record(index, record, limits, &defaults) {
        Ok(event) if errors.is_empty() => on_event(event),
        Ok(_) => {}
        Err(error) => errors.push(error),
    })?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(BatchError::Invalid(errors))
    }
}

/// One record the scanner handed over, validated (with `defaults` filled in).
fn checked_record(
    index: usize,
    record: scan::Record,
    limits: &BatchLimits,
    defaults: &RecordDefaults,
) -> Result<Event, RecordError> {
    match record {
        scan::Record::Value(value) => parse_record(index, value, limits, defaults),
        scan::Record::TooLarge(bytes) => Err(RecordError {
            index,
            insert_id: String::new(),
            field: String::new(),
            message: format!(
                "the event is {bytes} bytes of JSON, over the limit of {} bytes per event",
                limits.max_event_bytes
            ),
        }),
    }
}

/// The `$insert_id` tierd derives for an event sent without one: 32 lowercase hex chars of xxh3-128 over a
/// length-prefixed encoding of the event name, `distinct_id`, `time_ms` and the remaining properties as canonical
/// JSON (keys sorted). Resending the exact same event derives the same id; any change of content derives another.
pub fn derive_insert_id(event: &str, distinct_id: &str, time_ms: i64, properties: &Map<String, Value>) -> String {
    let mut hasher = insert_id_hasher(event, distinct_id, time_ms);
    let mut field = StreamedField::new(&mut hasher);
    // `Map` is a BTreeMap (serde_json without `preserve_order`), so this is canonical: keys in sorted order.
    serde_json::to_writer(&mut field, properties).expect("writing JSON into a hasher cannot fail");
    field.finish();
    format!("{:032x}", hasher.finish())
}

/// The hasher of a derived `$insert_id` after every field but the properties; the caller streams the properties'
/// canonical JSON into it with a [`StreamedField`].
fn insert_id_hasher(event: &str, distinct_id: &str, time_ms: i64) -> KeyHasher {
    let mut hasher = KeyHasher::new();
    hasher.bytes(b"tierd.insert_id.v1").bytes(event.as_bytes()).bytes(distinct_id.as_bytes()).i64(time_ms);
    hasher
}

impl Event {
    /// The event in Mixpanel `/import` shape: `{"event":..,"properties":{"time":ms,"distinct_id":..,"$insert_id":..,...}}`.
    ///
    /// `time` is always written in milliseconds. [`parse_batch`] reads it back as milliseconds when it is at least
    /// [`MILLIS_THRESHOLD`] (from 1973-03-03T09:46:40Z on); an earlier `time_ms` is read back as seconds, as Mixpanel
    /// would, so only events from that date on round-trip exactly. An empty `distinct_id` is written as `""`.
    pub fn to_mixpanel_json(&self) -> Value {
        let mut properties = self.properties.clone();
        properties.insert("time".to_owned(), Value::from(self.time_ms));
        properties.insert("distinct_id".to_owned(), Value::String(self.distinct_id.clone()));
        properties.insert("$insert_id".to_owned(), Value::String(self.insert_id.clone()));
        let mut record = Map::new();
        record.insert("event".to_owned(), Value::String(self.event.clone()));
        record.insert("properties".to_owned(), Value::Object(properties));
        Value::Object(record)
    }
}

fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// At most the first 64 bytes of `text` (at a character boundary), for error messages about long texts.
fn shortened(text: &str) -> String {
    if text.len() <= 64 {
        return text.to_owned();
    }
    let mut end = 64;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

fn check_count(got: usize, limits: &BatchLimits) -> Result<(), BatchError> {
    if got > limits.max_events {
        return Err(BatchError::TooManyEvents { limit: limits.max_events, got });
    }
    Ok(())
}

/// serde_json's message without its trailing " at line L column C", which is relative to the NDJSON line.
fn error_without_position(error: &serde_json::Error) -> String {
    let mut text = error.to_string();
    if let Some(at) = text.rfind(" at line ") {
        text.truncate(at);
    }
    text
}

fn parse_record(
    index: usize,
    record: Value,
    limits: &BatchLimits,
    defaults: &RecordDefaults,
) -> Result<Event, RecordError> {
    let fail = |insert_id: &str, field: &str, message: String| RecordError {
        index,
        insert_id: insert_id.to_owned(),
        field: field.to_owned(),
        message,
    };

    let mut record = match record {
        Value::Object(record) => record,
        other => {
            let message =
                format!("each event must be a JSON object with \"event\" and \"properties\", got {}", kind(&other));
            return Err(fail("", "", message));
        }
    };
    let event = match parse_event_name(record.remove("event")) {
        Ok(event) => event,
        Err(message) => {
            let insert_id = record.get("properties").and_then(|p| p.get("$insert_id")).and_then(Value::as_str);
            return Err(fail(insert_id.unwrap_or_default(), "event", message));
        }
    };
    let mut properties = match record.remove("properties") {
        Some(Value::Object(properties)) => properties,
        None => return Err(fail("", "properties", "is required: an object with at least \"time\"".to_owned())),
        Some(other) => return Err(fail("", "properties", format!("must be an object, got {}", kind(&other)))),
    };
    let raw_insert_id = properties.remove("$insert_id");
    let hint = raw_insert_id.as_ref().and_then(Value::as_str).unwrap_or_default();
    let default_time = defaults.fill(&mut properties);
    let given = properties.len() + usize::from(raw_insert_id.is_some()) + usize::from(default_time.is_some());
    if given > limits.max_properties {
        let message = format!("has {given} properties, over the limit of {} per event", limits.max_properties);
        return Err(fail(hint, "properties", message));
    }
    // `$insert_id` itself is 10 bytes, under any allowed limit.
    if let Some(name) = properties.keys().find(|k| k.len() > limits.max_property_name_bytes) {
        let message = format!(
            "has a property name of {} bytes, over the limit of {} bytes: {:?}",
            name.len(),
            limits.max_property_name_bytes,
            shortened(name)
        );
        return Err(fail(hint, "properties", message));
    }
    let time_ms = match default_time {
        Some(ms) => ms,
        None => parse_time(properties.remove("time").as_ref()).map_err(|m| fail(hint, "properties.time", m))?,
    };
    let distinct_id =
        parse_distinct_id(properties.remove("distinct_id")).map_err(|m| fail(hint, "properties.distinct_id", m))?;
    let insert_id = match raw_insert_id {
        None | Some(Value::Null) => derive_insert_id(&event, &distinct_id, time_ms, &properties),
        Some(Value::String(id)) => {
            if id.is_empty() {
                return Err(fail(&id, "properties.$insert_id", "must not be empty".to_owned()));
            }
            if id.len() > MAX_INSERT_ID_BYTES {
                let message = format!("must be at most {MAX_INSERT_ID_BYTES} bytes, got {}", id.len());
                return Err(fail(&id, "properties.$insert_id", message));
            }
            id
        }
        Some(other) => {
            return Err(fail("", "properties.$insert_id", format!("must be a string, got {}", kind(&other))));
        }
    };
    Ok(Event { event, time_ms, distinct_id, insert_id, properties })
}

fn parse_event_name(event: Option<Value>) -> Result<String, String> {
    match event {
        None => Err("is required: the event name".to_owned()),
        Some(Value::String(name)) if name.is_empty() => Err("must not be empty".to_owned()),
        Some(Value::String(name)) if name.len() > MAX_EVENT_NAME_BYTES => {
            Err(format!("must be at most {MAX_EVENT_NAME_BYTES} bytes, got {}", name.len()))
        }
        Some(Value::String(name)) => Ok(name),
        Some(other) => Err(format!("must be a string, got {}", kind(&other))),
    }
}

/// `properties.distinct_id` as stored: a string as is, a number as its JSON text, absent or null as empty.
fn parse_distinct_id(distinct_id: Option<Value>) -> Result<String, String> {
    let id = match distinct_id {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(id)) => id,
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(format!("must be a string or a number, got {}", kind(&other))),
    };
    if id.len() > MAX_DISTINCT_ID_BYTES {
        return Err(format!("must be at most {MAX_DISTINCT_ID_BYTES} bytes, got {}", id.len()));
    }
    Ok(id)
}

/// `properties.time` in milliseconds since the epoch; see [`parse_batch`] for the rules.
fn parse_time(time: Option<&Value>) -> Result<i64, String> {
    let n = match time {
        None => return Err("is required: seconds or milliseconds since the Unix epoch".to_owned()),
        Some(Value::Number(n)) => n,
        Some(other) => {
            return Err(format!(
                "must be a number of seconds or milliseconds since the Unix epoch, got {}",
                kind(other)
            ))
        }
    };
    let negative = || format!("must not be negative, got {n}");
    let ms = if let Some(i) = n.as_i64() {
        if i < 0 {
            return Err(negative());
        }
        // i < MILLIS_THRESHOLD, so i * 1000 cannot overflow.
        Some(if i >= MILLIS_THRESHOLD { i } else { i * 1000 })
    } else if n.is_u64() {
        None // above i64::MAX milliseconds
    } else {
        // JSON has no NaN or infinities, but a float is checked anyway rather than trusted.
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.is_nan() {
            return Err(format!("must be a finite number, got {n}"));
        }
        if f < 0.0 {
            return Err(negative());
        }
        let ms = if f >= MILLIS_THRESHOLD as f64 { f.round() } else { (f * 1000.0).round() };
        // MAX_TIME_MS < 2^53 is exact as f64, and `ms` is integral, so the cast below is exact.
        (ms <= MAX_TIME_MS as f64).then_some(ms as i64)
    };
    match ms {
        Some(ms) if ms <= MAX_TIME_MS => Ok(ms),
        _ => Err(format!("{n} is out of range: the time must be between 1970-01-01 and 9999-12-31")),
    }
}

/// A JSON value's kind, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod tests;
