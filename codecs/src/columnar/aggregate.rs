//! Counting a columnar segment's events per group key under property conditions, without building events: the
//! grouped, filtered form of [`super::count_by_event`], for queries with `where` conditions or a property
//! `group_by`.
//!
//! It reads the row groups and pages a scan of the same window and event name would read (one [`Selection`]), but
//! only the columns the request needs: `time`, `event` when the request names one or groups by it, the lifted
//! `distinct_id` / `$insert_id` when a condition or the group key uses them, and for each property its shredded
//! column and `_props` only when the footer says the key occurs there (with a value other than `null`, unless the
//! condition is `eq null` or `neq null`: to the others and to a group key, `null` and missing are alike). Conditions are evaluated a column at a time
//! into a row mask ([`predicate`]), string columns read as dictionaries where their pages are (a condition is then
//! decided once per distinct value), and the rows left are counted per key by the key's native type ([`counts`]).
//!
//! The answer is, per group key, the number of events [`super::scan()`] would deliver for the window and name that
//! meet every condition ([`crate::condition::Filter::matches`]), grouped by [`GroupBy::key`], on the same events.
//! Like [`super::count_by_event`] it counts stored rows and does not deduplicate: it is a deduplicated count only on
//! a segment that holds one copy of each event.

mod counts;
mod predicate;
mod values;

#[cfg(test)]
mod tests;

use std::ops::Range;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use serde_json::Value;

use self::counts::GroupCounts;
use self::values::{ColumnNames, KeyPlan};
use super::layout::{EVENT_COLUMN, EVENT_INDEX, TIME_COLUMN, TIME_INDEX};
use super::ranged::{ChunkReader, ColumnarFooter};
use super::select::{ScanRequest, ScanStats, Selection};
use super::shred::ColumnKind;
use super::ColumnarError;
use crate::condition::{Filter, GroupBy, Op};

/// What to count: the events of a window (and event name) that meet every condition, per group key.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupCountRequest {
    /// The window and the event name; `properties` is ignored (the conditions and the key say what is read).
    pub scan: ScanRequest,
    pub filters: Vec<Filter>,
    pub group_by: GroupBy,
}

/// How big a count's groups are so far, for a caller that bounds them (see [`count_groups`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupProgress {
    /// Distinct keys counted so far.
    pub groups: usize,
    /// Bytes of their text (8 per number).
    pub key_bytes: u64,
}

/// Per group key, how many events of the segment in `bytes` match `req` (see the module documentation): the key
/// `null` alone without grouping; keys in no particular order, each count above zero (a key may come twice only
/// from a file tierd did not write; add their counts). `progress` is called after every batch of rows (and once
/// at the end); when it returns false the count stops and what was counted so far is returned.
///
/// Fails like [`super::decode`] on bytes that are not a readable columnar segment, and with
/// [`ColumnarError::Corrupt`] where a value the request reads could not have been written by tierd (a non-finite
/// float, invalid JSON), as a scan would. [`ColumnarFooter::count_groups`] is the same over any [`ChunkReader`].
pub fn count_groups(
    bytes: Bytes,
    req: &GroupCountRequest,
    progress: impl FnMut(GroupProgress) -> bool,
) -> Result<(Vec<(Value, u64)>, ScanStats), ColumnarError> {
    ColumnarFooter::load(&bytes)?.count_groups(bytes, req, progress)
}

/// Which columns a request reads in one segment.
struct Plan {
    filters: Vec<KeyPlan>,
    group: GroupPlan,
    roots: Vec<usize>,
    /// String columns the request reads (shredded ones, `distinct_id`, `$insert_id`): read as dictionaries where
    /// every selected row group has one.
    strings: Vec<usize>,
}

enum GroupPlan {
    None,
    Event,
    Key(KeyPlan),
}

impl Plan {
    fn new(layout: &super::layout::Layout, req: &GroupCountRequest) -> Self {
        // A condition tells `null` from missing only as `eq null` / `neq null`; a group key never does (both are
        // the group `null`).
        let null_matters = |f: &Filter| matches!(f.op, Op::Eq | Op::Neq) && f.value.is_null();
        let filters: Vec<KeyPlan> =
            req.filters.iter().map(|f| KeyPlan::new(layout, &f.property, null_matters(f))).collect();
        let group = match &req.group_by {
            GroupBy::None => GroupPlan::None,
            GroupBy::Event => GroupPlan::Event,
            GroupBy::Property(key) => GroupPlan::Key(KeyPlan::new(layout, key, false)),
        };
        let mut roots = vec![TIME_INDEX];
        if req.scan.event.is_some() || matches!(group, GroupPlan::Event) {
            roots.push(EVENT_INDEX);
        }
        let keys = || {
            filters.iter().chain(match &group {
                GroupPlan::Key(key) => Some(key),
                _ => None,
            })
        };
        let props = layout.props_index();
        roots.extend(keys().flat_map(|key| key.roots(props)));
        roots.sort_unstable();
        roots.dedup();
        let mut strings: Vec<usize> = keys()
            .filter_map(|key| match key {
                KeyPlan::Property(p) => p.column.filter(|(_, kind)| *kind == ColumnKind::Utf8).map(|(i, _)| i),
                KeyPlan::Text(index) => Some(*index),
                KeyPlan::Time => None,
            })
            .collect();
        strings.sort_unstable();
        strings.dedup();
        Plan { filters, group, roots, strings }
    }
}

impl ColumnarFooter {
    /// The byte ranges [`ColumnarFooter::count_groups`] reads for `req`, sorted and merged where they touch.
    pub fn group_ranges(&self, req: &GroupCountRequest) -> Vec<Range<u64>> {
        self.chunk_ranges(&req.scan, &Plan::new(&self.layout, req).roots)
    }

    /// [`count_groups`] over `reader`, which must serve at least [`ColumnarFooter::group_ranges`] of `req` (and
    /// the ranges the footer was loaded from).
    pub fn count_groups<R: ChunkReader + 'static>(
        &self,
        reader: R,
        req: &GroupCountRequest,
        mut progress: impl FnMut(GroupProgress) -> bool,
    ) -> Result<(Vec<(Value, u64)>, ScanStats), ColumnarError> {
        let segment_id = self.layout.info.segment_id.as_str();
        let corrupt = |message: String| ColumnarError::Corrupt { segment_id: segment_id.to_owned(), message };
        let plan = Plan::new(&self.layout, req);
        let selection = Selection::new(self.metadata.metadata(), &req.scan);
        let mut stats = selection.stats();
        let grouped = !matches!(plan.group, GroupPlan::None);
        if selection.is_empty() {
            return Ok((Vec::new(), stats));
        }
        let metadata = self.with_dictionaries(&plan.strings, &selection.groups)?;
        let names = ColumnNames::new(self.metadata.schema(), &self.layout);
        let mut counts = GroupCounts::default();
        let mut stopped = false;
        for batch in self.read_selected_with(metadata, reader, selection, &plan.roots)? {
            let batch = batch?;
            stats.rows_read += batch.num_rows() as u64;
            let mut mask = window(&batch, &req.scan).map_err(corrupt)?;
            for (key, filter) in plan.filters.iter().zip(&req.filters) {
                if !mask.contains(&true) {
                    break;
                }
                let source = key.bind(&batch, &names).map_err(corrupt)?;
                predicate::apply(filter, &source, &mut mask).map_err(corrupt)?;
            }
            match &plan.group {
                GroupPlan::None => counts.add_total(&mask),
                GroupPlan::Event => {
                    let event = event_column(&batch).map_err(corrupt)?;
                    let values = event.values().as_string_opt::<i32>().ok_or_else(|| corrupt(wrong(EVENT_COLUMN)))?;
                    let keyless = |_| Err(format!("column {EVENT_COLUMN:?} has nulls"));
                    counts.add_dictionary(&mask, event.keys(), values, event.values(), keyless).map_err(corrupt)?;
                }
                GroupPlan::Key(key) => {
                    counts.add(&mask, &key.bind(&batch, &names).map_err(corrupt)?).map_err(corrupt)?
                }
            }
            if !progress(GroupProgress { groups: counts.groups(), key_bytes: counts.key_bytes() }) {
                stopped = true;
                break;
            }
        }
        if !stopped {
            counts.flush().map_err(corrupt)?;
            progress(GroupProgress { groups: counts.groups(), key_bytes: counts.key_bytes() });
        }
        Ok((counts.finish(grouped).map_err(corrupt)?, stats))
    }

    /// The reader metadata with the string columns among `strings` read as dictionaries (`Dictionary<Int32, Utf8>`)
    /// where every one of the row groups `groups` has a dictionary page for them: a condition on such a column is
    /// then decided once per distinct value and a group counted per dictionary key. (Where pages were written
    /// without one, the reader would have to build a dictionary per batch: plain strings are read instead.)
    fn with_dictionaries(&self, strings: &[usize], groups: &[usize]) -> Result<ArrowReaderMetadata, ColumnarError> {
        let parquet = self.metadata.metadata();
        let dictionary: Vec<usize> = strings
            .iter()
            .copied()
            .filter(|&i| groups.iter().all(|&g| parquet.row_group(g).column(i).dictionary_page_offset().is_some()))
            .collect();
        if dictionary.is_empty() {
            return Ok(self.metadata.clone());
        }
        let schema = self.metadata.schema();
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| match dictionary.contains(&i) {
                true => Arc::new(
                    field
                        .as_ref()
                        .clone()
                        .with_data_type(DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))),
                ),
                false => field.clone(),
            })
            .collect();
        let hinted = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        ArrowReaderMetadata::try_new(parquet.clone(), ArrowReaderOptions::new().with_schema(hinted))
            .map_err(ColumnarError::parquet(&self.layout.info.segment_id, "read setup"))
    }
}

fn wrong(name: &str) -> String {
    format!("column {name:?} does not have the type its footer describes")
}

fn event_column(batch: &RecordBatch) -> Result<&arrow_array::DictionaryArray<Int32Type>, String> {
    let event = batch
        .column_by_name(EVENT_COLUMN)
        .and_then(|c| c.as_dictionary_opt::<Int32Type>())
        .ok_or_else(|| wrong(EVENT_COLUMN))?;
    if event.keys().null_count() > 0 {
        return Err(format!("column {EVENT_COLUMN:?} has nulls"));
    }
    Ok(event)
}

/// The rows of `batch` inside the request's window and of its event name, as a scan selects them.
fn window(batch: &RecordBatch, req: &ScanRequest) -> Result<Vec<bool>, String> {
    let time = batch
        .column_by_name(TIME_COLUMN)
        .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
        .ok_or_else(|| wrong(TIME_COLUMN))?;
    let (from, to) = (req.from_ms, req.to_ms);
    let mut mask: Vec<bool> = time.values().iter().map(|&t| from <= t && t < to).collect();
    if let Some(name) = &req.event {
        let event = event_column(batch)?;
        let values = event.values();
        let names = values.as_string_opt::<i32>().ok_or_else(|| wrong(EVENT_COLUMN))?;
        let wanted: Vec<bool> = (0..names.len()).map(|i| names.is_valid(i) && names.value(i) == name).collect();
        for (m, &key) in mask.iter_mut().zip(event.keys().values()) {
            *m &= usize::try_from(key).ok().and_then(|k| wanted.get(k).copied()).unwrap_or(false);
        }
    }
    Ok(mask)
}
