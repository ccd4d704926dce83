//! Sorting events that arrive in no particular order (a row segment's, a columnar segment written in another order)
//! in memory, compactly: each event is held as its stored text (about its size in a row segment, a fraction of a
//! decoded `serde_json` map), its properties counted for the shredding decision as they come in, and turned back
//! into an event only when it is handed out in (event, time, seq) order.
//!
//! A rewrite fills a [`SortBuffer`] up to its memory budget ([`SortBuffer::bytes`]), then sorts it into a
//! [`SortedRun`]: an [`EventSource`] for [`super::merge`], or the rows of a run written to a spill file when more
//! runs follow (an external sort).

use std::collections::HashMap;
use std::sync::Arc;

use super::merge::EventSource;
use super::survey::ShredSurvey;
use super::text_row::{MergeEvent, StoredText};
use super::ColumnarError;
use crate::event::StoredEvent;
use crate::hash::Xxh3State;
use crate::rows::RawRow;

/// Bytes an event costs in the buffer besides its text (the row struct and its share of the index).
const ROW_OVERHEAD: usize = std::mem::size_of::<CompactRow>();

/// One event: its fixed fields, its event name as an index into the buffer's names, and one string holding its
/// `distinct_id`, `$insert_id` and properties JSON text, one after the other.
struct CompactRow {
    seq: u64,
    time_ms: i64,
    name: u32,
    distinct_id_len: u32,
    insert_id_len: u32,
    text: Box<str>,
}

/// Events being gathered for sorting; see the module documentation.
#[derive(Default)]
pub struct SortBuffer {
    names: Vec<Arc<str>>,
    name_ids: HashMap<String, u32, Xxh3State>,
    rows: Vec<CompactRow>,
    bytes: usize,
    survey: ShredSurvey,
}

impl SortBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Memory held, about: the events' text, the row structs, the event names.
    pub fn bytes(&self) -> usize {
        self.bytes + self.rows.capacity().saturating_sub(self.rows.len()) * ROW_OVERHEAD
    }

    /// Adds a row as the row format stores it. Properties that are not a JSON object are an error naming `seq`,
    /// and the row is not added.
    pub fn push_raw(&mut self, row: &RawRow<'_>) -> Result<(), String> {
        self.survey.add_properties_json(row.properties_json).map_err(|e| format!("row with seq {}: {e}", row.seq))?;
        self.push_parts(row.seq, row.time_ms, row.event, row.distinct_id, row.insert_id, row.properties_json);
        Ok(())
    }

    /// Adds a decoded event.
    pub fn push_event(&mut self, stored: &StoredEvent) {
        self.survey.add_event(&stored.event);
        let e = &stored.event;
        let json = serde_json::to_string(&e.properties).expect("a JSON map always serializes");
        self.push_parts(stored.seq, e.time_ms, &e.event, &e.distinct_id, &e.insert_id, &json);
    }

    fn push_parts(&mut self, seq: u64, time_ms: i64, event: &str, distinct_id: &str, insert_id: &str, json: &str) {
        let name = match self.name_ids.get(event) {
            Some(&id) => id,
            None => {
                let id = u32::try_from(self.names.len()).expect("fewer than 4 billion event names");
                self.names.push(Arc::from(event));
                self.name_ids.insert(event.to_owned(), id);
                self.bytes += 2 * event.len() + 64;
                id
            }
        };
        let mut text = String::with_capacity(distinct_id.len() + insert_id.len() + json.len());
        text.push_str(distinct_id);
        text.push_str(insert_id);
        text.push_str(json);
        let len = |s: &str| u32::try_from(s.len()).expect("a row string is below 4 GiB");
        self.bytes += ROW_OVERHEAD + text.len();
        self.rows.push(CompactRow {
            seq,
            time_ms,
            name,
            distinct_id_len: len(distinct_id),
            insert_id_len: len(insert_id),
            text: text.into_boxed_str(),
        });
    }

    /// Sorts the events by (event, time, seq) (stable: equal keys keep their arrival order).
    pub fn sort(self) -> SortedRun {
        let Self { names, rows, bytes, survey, .. } = self;
        let mut by_name: Vec<u32> = (0..names.len() as u32).collect();
        // `Arc<str>` compares as `str`: byte order, as `String`.
        by_name.sort_by(|a, b| names[*a as usize].cmp(&names[*b as usize]));
        let mut rank = vec![0u32; names.len()];
        for (r, id) in by_name.into_iter().enumerate() {
            rank[id as usize] = r as u32;
        }
        let mut rows = rows;
        rows.sort_by_key(|r| (rank[r.name as usize], r.time_ms, r.seq));
        SortedRun { names, rows: rows.into_iter(), bytes, survey }
    }
}

/// A sorted [`SortBuffer`], handing its events out in (event, time, seq) order: as [`MergeEvent::Text`] (their
/// properties left as text, for the writer; no copy) or parsed into [`StoredEvent`]s.
pub struct SortedRun {
    names: Vec<Arc<str>>,
    rows: std::vec::IntoIter<CompactRow>,
    bytes: usize,
    survey: ShredSurvey,
}

impl SortedRun {
    /// The counts of the run's properties (exact: every event was counted as it came in).
    pub fn survey(&self) -> &ShredSurvey {
        &self.survey
    }

    /// Events not handed out yet.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.len() == 0
    }

    /// Memory held when the run was sorted, about.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl SortedRun {
    /// The next event, its properties still the text they were stored as.
    pub fn next_text(&mut self) -> Option<StoredText> {
        let row = self.rows.next()?;
        let name = self.names[row.name as usize].clone();
        Some(StoredText::new(row.seq, row.time_ms, name, row.text, row.distinct_id_len, row.insert_id_len))
    }
}

impl EventSource<ColumnarError, MergeEvent> for SortedRun {
    fn next_event(&mut self) -> Result<Option<MergeEvent>, ColumnarError> {
        Ok(self.next_text().map(MergeEvent::Text))
    }
}

impl EventSource<ColumnarError> for SortedRun {
    fn next_event(&mut self) -> Result<Option<StoredEvent>, ColumnarError> {
        let Some(text) = self.next_text() else { return Ok(None) };
        text.to_event()
            .map(Some)
            .map_err(|message| ColumnarError::Corrupt { segment_id: "(sort buffer)".to_owned(), message })
    }
}
