//! A validated batch of events in their stored form, as [`crate::parse_batch_rows`] returns it.
//!
//! The ingest path validates a request and encodes it into frames; it never needs the properties as a
//! `Map<String, Value>`, only as the JSON text a row stores. A [`RowBatch`] keeps each event's fields and its
//! properties' canonical JSON (exactly `serde_json::to_string(&event.properties)`) in one buffer, so a batch costs
//! two allocations instead of a tree of values per event, and [`crate::FrameBody::encode_rows`] copies text instead
//! of serializing it again.

use std::fmt;
use std::ops::Range;

use super::Event;

/// Validated events in request order, each with its properties as canonical JSON text.
///
/// Made only by [`crate::parse_batch_rows`] (or [`RowBatch::from_events`]), so every row's `properties_json` is the
/// canonical JSON of a properties object: frames encoded from it decode to the same [`Event`]s as
/// [`crate::parse_batch`] gives for the same body, byte for byte the same frames.
#[derive(Clone, Default)]
pub struct RowBatch {
    /// Every row's strings, back to back.
    text: String,
    rows: Vec<RowSpans>,
}

/// Where one row's strings are in [`RowBatch::text`].
#[derive(Debug, Clone)]
pub(super) struct RowSpans {
    pub(super) time_ms: i64,
    pub(super) event: Range<usize>,
    pub(super) distinct_id: Range<usize>,
    pub(super) insert_id: Range<usize>,
    pub(super) properties_json: Range<usize>,
}

/// One event of a [`RowBatch`]: the fields of an [`Event`], with the properties as canonical JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRow<'a> {
    time_ms: i64,
    event: &'a str,
    distinct_id: &'a str,
    insert_id: &'a str,
    properties_json: &'a str,
}

impl RowBatch {
    pub(super) fn from_parts(text: String, rows: Vec<RowSpans>) -> Self {
        Self { text, rows }
    }

    /// The rows of already validated events (the slow path of [`crate::parse_batch_rows`], and tests).
    pub fn from_events(events: &[Event]) -> Self {
        let mut batch = Self::default();
        for e in events {
            batch.push_event(e);
        }
        batch
    }

    /// Appends one already validated event (the slow path builds its rows one event at a time).
    pub(super) fn push_event(&mut self, e: &Event) {
        let push = |text: &mut String, s: &str| {
            let start = text.len();
            text.push_str(s);
            start..text.len()
        };
        let text = &mut self.text;
        let event = push(text, &e.event);
        let distinct_id = push(text, &e.distinct_id);
        let insert_id = push(text, &e.insert_id);
        // `Map`'s own serialization: the definition of the canonical text.
        let json = serde_json::to_string(&e.properties).expect("a Map<String, Value> always serializes");
        let properties_json = push(text, &json);
        self.rows.push(RowSpans { time_ms: e.time_ms, event, distinct_id, insert_id, properties_json });
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The `i`-th row, in request order.
    pub fn get(&self, i: usize) -> Option<EventRow<'_>> {
        self.rows.get(i).map(|spans| self.row(spans))
    }

    /// The rows in request order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = EventRow<'_>> + '_ {
        self.rows.iter().map(|spans| self.row(spans))
    }

    /// The events, as [`crate::parse_batch`] returns them (this parses every row's properties into a `Map`).
    pub fn to_events(&self) -> Vec<Event> {
        self.iter().map(|row| row.to_event()).collect()
    }

    fn row(&self, spans: &RowSpans) -> EventRow<'_> {
        EventRow {
            time_ms: spans.time_ms,
            event: &self.text[spans.event.clone()],
            distinct_id: &self.text[spans.distinct_id.clone()],
            insert_id: &self.text[spans.insert_id.clone()],
            properties_json: &self.text[spans.properties_json.clone()],
        }
    }
}

/// Two batches are equal when their rows are, however the text is laid out.
impl PartialEq for RowBatch {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for RowBatch {}

impl fmt::Debug for RowBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> EventRow<'a> {
    /// Milliseconds since the Unix epoch.
    pub fn time_ms(&self) -> i64 {
        self.time_ms
    }

    pub fn event(&self) -> &'a str {
        self.event
    }

    pub fn distinct_id(&self) -> &'a str {
        self.distinct_id
    }

    pub fn insert_id(&self) -> &'a str {
        self.insert_id
    }

    /// The properties other than the lifted ones, as canonical JSON: an object with its keys in sorted order, no
    /// whitespace, values written as serde_json writes them.
    pub fn properties_json(&self) -> &'a str {
        self.properties_json
    }

    pub fn to_event(&self) -> Event {
        Event {
            event: self.event.to_owned(),
            time_ms: self.time_ms,
            distinct_id: self.distinct_id.to_owned(),
            insert_id: self.insert_id.to_owned(),
            properties: serde_json::from_str(self.properties_json)
                .expect("a row's properties are canonical JSON of an object, written by this crate"),
        }
    }
}
