//! What of a columnar segment a request reads: the [`ScanRequest`] itself, the row groups and rows its window and
//! event name may match ([`Selection`], from the row group statistics and the page index), and the columns it
//! projects ([`scan_roots`]).
//!
//! This is the one home of pruning: [`super::scan()`] and [`super::count_by_event`] read exactly a [`Selection`], and
//! [`super::ColumnarFooter`] plans its byte ranges from the same one, so what is fetched and what is read agree.

use std::ops::Range;

use parquet::arrow::arrow_reader::RowSelection;
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;

use super::layout::{
    Layout, DISTINCT_ID_INDEX, EVENT_INDEX, FIRST_PROPERTY_INDEX, INSERT_ID_INDEX, SEQ_INDEX, TIME_INDEX,
};

/// What to scan for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanRequest {
    /// Events with `from_ms <= time_ms < to_ms`; an empty window (`from_ms >= to_ms`) matches nothing.
    pub from_ms: i64,
    pub to_ms: i64,
    /// Only events with this name.
    pub event: Option<String>,
    /// `None`: every property. `Some(keys)`: only these properties (the lifted fields time, event, `distinct_id`,
    /// `$insert_id` and the sequence always come); columns of other properties are not read.
    pub properties: Option<Vec<String>>,
}

/// What a scan read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanStats {
    /// Row groups in the segment.
    pub row_groups: usize,
    /// Row groups that were not skipped by statistics (by their row group statistics or because the page index
    /// left none of their pages).
    pub row_groups_read: usize,
    /// Rows decoded (those of the pages read); at least the number of events delivered.
    pub rows_read: u64,
}

/// The root columns a scan of `req` reads: the five lifted ones, the shredded columns of the requested properties,
/// and `_props` when a requested key occurs in it somewhere in the segment (every property column with
/// `req.properties = None`).
pub(super) fn scan_roots(layout: &Layout, req: &ScanRequest) -> Vec<usize> {
    let mut roots = vec![TIME_INDEX, EVENT_INDEX, DISTINCT_ID_INDEX, INSERT_ID_INDEX, SEQ_INDEX];
    match &req.properties {
        None => roots.extend(FIRST_PROPERTY_INDEX..=layout.props_index()),
        Some(keys) => {
            let shredded = layout.columns.iter().enumerate().filter(|(_, c)| keys.contains(&c.key));
            roots.extend(shredded.map(|(i, _)| FIRST_PROPERTY_INDEX + i));
            if keys.iter().any(|key| layout.props_keys.contains(key)) {
                roots.push(layout.props_index());
            }
        }
    }
    roots
}

/// What of a segment a request may match, by the row group statistics and the page index: the row groups to read
/// and, within them, the rows. Every reader of a window ([`super::scan()`], [`super::count_by_event`]) reads exactly this,
/// then filters the decoded rows exactly.
pub(super) struct Selection {
    /// Row groups in the segment.
    pub(super) row_groups: usize,
    /// Row groups to read, ascending.
    pub(super) groups: Vec<usize>,
    /// Rows to read, relative to the concatenation of `groups`.
    pub(super) rows: RowSelection,
}

impl Selection {
    pub(super) fn new(parquet: &ParquetMetaData, req: &ScanRequest) -> Self {
        let row_groups = parquet.num_row_groups();
        if req.from_ms >= req.to_ms {
            return Selection { row_groups, groups: Vec::new(), rows: RowSelection::from(Vec::new()) };
        }
        let (mut groups, mut ranges, mut kept_rows) = (Vec::new(), Vec::new(), 0usize);
        for (i, group) in parquet.row_groups().iter().enumerate() {
            if !group_may_match(group, req) {
                continue;
            }
            let rows = usize::try_from(group.num_rows()).unwrap_or(0);
            let pages = page_ranges(parquet, i, rows, req);
            if pages.is_empty() {
                continue;
            }
            groups.push(i);
            ranges.extend(pages.into_iter().map(|r| r.start + kept_rows..r.end + kept_rows));
            kept_rows += rows;
        }
        let rows = RowSelection::from_consecutive_ranges(ranges.into_iter(), kept_rows);
        Selection { row_groups, groups, rows }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The statistics of a scan of this selection before any row is decoded.
    pub(super) fn stats(&self) -> ScanStats {
        ScanStats { row_groups: self.row_groups, row_groups_read: self.groups.len(), rows_read: 0 }
    }
}

/// Whether a row group's statistics allow a matching row. Missing statistics allow everything. Byte array bounds
/// may be truncated, but a truncated minimum is a prefix (still a lower bound) and a truncated maximum is rounded
/// up (still an upper bound), so the test stays conservative.
fn group_may_match(group: &RowGroupMetaData, req: &ScanRequest) -> bool {
    let time = match group.column(TIME_INDEX).statistics() {
        Some(Statistics::Int64(s)) => overlaps(s.min_opt().copied(), s.max_opt().copied(), req),
        _ => true,
    };
    let event = match (&req.event, group.column(EVENT_INDEX).statistics()) {
        (Some(name), Some(Statistics::ByteArray(s))) => {
            may_contain(s.min_opt().map(|v| v.data()), s.max_opt().map(|v| v.data()), name.as_bytes())
        }
        _ => true,
    };
    time && event
}

fn overlaps(min: Option<i64>, max: Option<i64>, req: &ScanRequest) -> bool {
    match (min, max) {
        (Some(min), Some(max)) => max >= req.from_ms && min < req.to_ms,
        _ => true,
    }
}

fn may_contain(min: Option<&[u8]>, max: Option<&[u8]>, name: &[u8]) -> bool {
    match (min, max) {
        (Some(min), Some(max)) => min <= name && name <= max,
        _ => true,
    }
}

/// The row ranges of row group `group` (of `rows` rows) that the page index of `time` (and of `event`, when the
/// request names one) does not rule out; all rows when there is no usable page index.
fn page_ranges(metadata: &ParquetMetaData, group: usize, rows: usize, req: &ScanRequest) -> Vec<Range<usize>> {
    let index = metadata.page_index_for_row_group(group);
    let pages = |column: usize, keep: &dyn Fn(&ColumnIndexMetaData, usize) -> bool| {
        let column_index = index.column_index(column)?;
        let locations = index.page_locations(column)?;
        if usize::try_from(column_index.num_pages()).ok()? != locations.len() {
            return None;
        }
        let starts: Vec<usize> =
            locations.iter().map(|l| usize::try_from(l.first_row_index).ok()).collect::<Option<_>>()?;
        // A page index that does not tile the row group is ignored rather than trusted.
        if starts.first() != Some(&0) || starts.windows(2).any(|w| w[0] >= w[1]) || starts.last() >= Some(&rows) {
            return None;
        }
        let mut kept: Vec<Range<usize>> = Vec::new();
        for (page, &start) in starts.iter().enumerate() {
            let end = starts.get(page + 1).copied().unwrap_or(rows);
            if keep(column_index, page) {
                match kept.last_mut() {
                    Some(last) if last.end == start => last.end = end,
                    _ => kept.push(start..end),
                }
            }
        }
        Some(kept)
    };

    let mut kept: Vec<Range<usize>> = std::iter::once(0..rows).collect();
    let by_time = pages(TIME_INDEX, &|index, page| match index {
        ColumnIndexMetaData::INT64(index) => {
            overlaps(index.min_value(page).copied(), index.max_value(page).copied(), req)
        }
        _ => true,
    });
    if let Some(by_time) = by_time {
        kept = intersect(&kept, &by_time);
    }
    if let Some(name) = &req.event {
        let by_event = pages(EVENT_INDEX, &|index, page| match index {
            ColumnIndexMetaData::BYTE_ARRAY(index) => {
                may_contain(index.min_value(page), index.max_value(page), name.as_bytes())
            }
            _ => true,
        });
        if let Some(by_event) = by_event {
            kept = intersect(&kept, &by_event);
        }
    }
    kept
}

/// The intersection of two sorted lists of disjoint ranges.
pub(super) fn intersect(a: &[Range<usize>], b: &[Range<usize>]) -> Vec<Range<usize>> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let (start, end) = (a[i].start.max(b[j].start), a[i].end.min(b[j].end));
        if start < end {
            out.push(start..end);
        }
        if a[i].end <= b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}
