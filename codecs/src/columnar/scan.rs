//! Scanning a columnar segment for the events of a time window (and optionally one event name), reading as little
//! as the file's statistics allow: whole row groups are skipped by their time and event statistics, pages inside
//! the kept row groups by the page index ([`Selection`]), and only the columns the requested properties need are
//! decoded ([`scan_roots`]).

use std::collections::BTreeSet;

use arrow_array::Array;
use bytes::Bytes;

use super::ranged::{ChunkReader, ColumnarFooter};
use super::read::BatchRows;
use super::select::{scan_roots, ScanRequest, ScanStats, Selection};
use super::ColumnarError;
use crate::event::StoredEvent;

/// Calls `f` with every event of the segment in `bytes` that matches `req`, in the segment's order, carrying only
/// the requested properties, and reports how much was read.
///
/// - Row groups whose `time` statistics do not overlap `[from_ms, to_ms)`, or whose `event` statistics cannot
///   contain `req.event`, are not read.
/// - In the others, pages are selected with the page index (`time` and `event` column indexes) and only the
///   selected rows are decoded; rows are then filtered exactly.
/// - Columns read: the five lifted ones, the shredded columns of the requested properties, and `_props` only when a
///   requested key occurs in it somewhere in the segment (the footer lists those keys).
///
/// Fails like [`super::decode`] on bytes that are not a readable columnar segment; `f` sees only events decoded
/// before a failure. [`ColumnarFooter::scan`] is the same over any [`ChunkReader`].
pub fn scan(bytes: Bytes, req: &ScanRequest, f: impl FnMut(StoredEvent)) -> Result<ScanStats, ColumnarError> {
    ColumnarFooter::load(&bytes)?.scan(bytes, req, f)
}

impl ColumnarFooter {
    /// [`scan`] over `reader`, which must serve at least [`ColumnarFooter::scan_ranges`] of `req` (and the ranges
    /// the footer was loaded from).
    pub fn scan<R: ChunkReader + 'static>(
        &self,
        reader: R,
        req: &ScanRequest,
        mut f: impl FnMut(StoredEvent),
    ) -> Result<ScanStats, ColumnarError> {
        let layout = &self.layout;
        let selection = Selection::new(self.metadata.metadata(), req);
        let mut stats = selection.stats();
        if selection.is_empty() {
            return Ok(stats);
        }

        let wanted: Option<BTreeSet<String>> = req.properties.as_ref().map(|keys| keys.iter().cloned().collect());
        for batch in self.read_selected(reader, selection, &scan_roots(layout, req))? {
            let batch = batch?;
            stats.rows_read += batch.num_rows() as u64;
            let rows = BatchRows::new(&batch, layout, wanted.as_ref())?;
            // Per dictionary entry of this batch: is it the requested name? Then a row is checked by its key alone.
            let names: Option<Vec<bool>> = req.event.as_deref().map(|name| {
                let values = rows.event.values();
                (0..values.len()).map(|i| values.is_valid(i) && values.value(i) == name).collect()
            });
            for row in 0..batch.num_rows() {
                let time = rows.time.value(row);
                if time < req.from_ms || time >= req.to_ms {
                    continue;
                }
                if let Some(names) = &names {
                    let key = usize::try_from(rows.event.keys().value(row)).ok();
                    if !key.and_then(|k| names.get(k).copied()).unwrap_or(false) {
                        continue;
                    }
                }
                f(rows.event(row)?);
            }
        }
        Ok(stats)
    }
}
