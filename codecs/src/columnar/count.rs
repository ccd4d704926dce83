//! Counting a columnar segment's events per name over a time window without materializing them: the count-only
//! form of [`super::scan()`], for queries that need nothing but `count(*) ... group by event`.
//!
//! A scan builds a [`StoredEvent`](crate::StoredEvent) per row, so it decodes `distinct_id`, `$insert_id` and
//! `seq` and copies three strings per row, though a count needs none of them. This reads the same row groups and
//! pages as a scan of the same request (one [`Selection`]), projects only `time` and `event`, and counts per
//! dictionary key of the `event` column: a name is turned into a `String` once per dictionary, not once per row.
//!
//! It counts stored rows. It does not deduplicate: it gives a deduplicated count only on a segment that holds at
//! most one copy of each event, which the caller must know (tierd's rewriter writes every columnar segment from
//! deduplicated events).

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use bytes::Bytes;

use super::layout::{EVENT_COLUMN, EVENT_INDEX, TIME_COLUMN, TIME_INDEX};
use super::ranged::{ChunkReader, ColumnarFooter};
use super::select::{ScanRequest, ScanStats, Selection};
use super::ColumnarError;

/// Per event name, how many events of the segment in `bytes` match `req`: exactly the events [`super::scan()`] would
/// deliver for `req`, counted by name. Names come in byte order, each with a count above zero. `req.properties`
/// is ignored (no property is read).
///
/// Reads only the `time` and `event` columns, of the row groups and pages `scan` would read; `ScanStats` reports
/// the same row groups and rows as `scan`'s. Fails like [`super::decode`] on bytes that are not a readable columnar
/// segment. [`ColumnarFooter::count_by_event`] is the same over any [`ChunkReader`].
pub fn count_by_event(bytes: Bytes, req: &ScanRequest) -> Result<(Vec<(String, u64)>, ScanStats), ColumnarError> {
    ColumnarFooter::load(&bytes)?.count_by_event(bytes, req)
}

impl ColumnarFooter {
    /// [`count_by_event`] over `reader`, which must serve at least [`ColumnarFooter::count_ranges`] of `req` (and
    /// the ranges the footer was loaded from).
    pub fn count_by_event<R: ChunkReader + 'static>(
        &self,
        reader: R,
        req: &ScanRequest,
    ) -> Result<(Vec<(String, u64)>, ScanStats), ColumnarError> {
        let segment_id = self.layout.info.segment_id.as_str();
        let selection = Selection::new(self.metadata.metadata(), req);
        let mut stats = selection.stats();
        if selection.is_empty() {
            return Ok((Vec::new(), stats));
        }

        let mut counts = Counts::new(segment_id);
        for batch in self.read_selected(reader, selection, &[TIME_INDEX, EVENT_INDEX])? {
            let batch = batch?;
            stats.rows_read += batch.num_rows() as u64;
            counts.add(&batch, req)?;
        }
        let mut counts = counts.finish()?;
        // Rows of other names were counted too (pages mix names); dropping them here is the scan's name filter.
        if let Some(name) = &req.event {
            counts.retain(|(n, _)| n == name);
        }
        Ok((counts, stats))
    }
}

/// Counts by name, accumulated per dictionary of the `event` column.
///
/// The Parquet reader hands every batch of one column chunk the same dictionary (the same `values` array), so the
/// counts of a chunk are kept per dictionary key and turned into names only when the dictionary changes: at a new
/// row group, and with every batch of pages written without a dictionary (`CodecSpec::dictionary` off, or a writer
/// that fell back to plain encoding when the dictionary grew too big), for which the reader builds one per batch.
struct Counts<'a> {
    segment_id: &'a str,
    by_name: BTreeMap<String, u64>,
    /// The current dictionary (held, so that its allocation cannot be reused by a different one while it is
    /// compared by address) and the count of each of its keys.
    current: Option<(ArrayRef, Vec<u64>)>,
}

impl<'a> Counts<'a> {
    fn new(segment_id: &'a str) -> Self {
        Counts { segment_id, by_name: BTreeMap::new(), current: None }
    }

    fn corrupt(&self, message: String) -> ColumnarError {
        ColumnarError::Corrupt { segment_id: self.segment_id.to_owned(), message }
    }

    /// Counts the rows of `batch` (columns `time` and `event`) inside `req`'s window.
    fn add(&mut self, batch: &RecordBatch, req: &ScanRequest) -> Result<(), ColumnarError> {
        let wrong_type =
            |name: &str| self.corrupt(format!("column {name:?} does not have the type its footer describes"));
        let time = batch
            .column_by_name(TIME_COLUMN)
            .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
            .ok_or_else(|| wrong_type(TIME_COLUMN))?;
        let event = batch
            .column_by_name(EVENT_COLUMN)
            .and_then(|c| c.as_dictionary_opt::<Int32Type>())
            .ok_or_else(|| wrong_type(EVENT_COLUMN))?;
        if event.keys().null_count() > 0 {
            return Err(self.corrupt(format!("column {EVENT_COLUMN:?} has nulls")));
        }
        let values = event.values();
        if !self.current.as_ref().is_some_and(|(current, _)| std::sync::Arc::ptr_eq(current, values)) {
            self.flush()?;
            self.current = Some((values.clone(), vec![0; values.len()]));
        }
        let Some((_, per_key)) = self.current.as_mut() else { unreachable!("set just above") };
        let (from, to) = (req.from_ms, req.to_ms);
        for (&time, &key) in time.values().iter().zip(event.keys().values()) {
            // Branch-free on the window (rows in and out of it interleave unpredictably at its edges).
            let inside = u64::from(from <= time && time < to);
            match usize::try_from(key).ok().and_then(|k| per_key.get_mut(k)) {
                Some(count) => *count += inside,
                None => {
                    let len = per_key.len();
                    return Err(self.corrupt(format!("event key {key} is outside its dictionary of {len}")));
                }
            }
        }
        Ok(())
    }

    /// Adds the current dictionary's counts to `by_name`.
    fn flush(&mut self) -> Result<(), ColumnarError> {
        let Some((values, per_key)) = self.current.take() else { return Ok(()) };
        let names: &StringArray = values
            .as_string_opt::<i32>()
            .ok_or_else(|| self.corrupt(format!("column {EVENT_COLUMN:?} does not have string values")))?;
        for (key, count) in per_key.into_iter().enumerate().filter(|(_, count)| *count > 0) {
            // As `scan` reads a name (`TypedDictionaryArray::value`); a null name would read as "".
            *self.by_name.entry(names.value(key).to_owned()).or_default() += count;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<(String, u64)>, ColumnarError> {
        self.flush()?;
        Ok(self.by_name.into_iter().collect())
    }
}
