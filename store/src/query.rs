//! The reference query engine: counts of deduplicated events, optionally filtered and grouped.
//!
//! Dedup is applied before property filters: of all copies of an event (same project, event, distinct_id, time
//! and `$insert_id`) only the one ingested last counts, and the filters and the group key are evaluated on that
//! copy. So the answer is the same whether or not duplicates have been physically removed yet, and whatever the
//! tier, format or codec of the segments.
//!
//! A day held by one columnar segment skips all of that: such a segment holds one copy of each event and no copy
//! can lie in another day, so its rows are counted as they are, without building events (see `DayPlan`): a plain
//! count (no property filter, grouped by nothing or by event name) from the `time` and `event` columns alone, any
//! other query from the columns its conditions and group key read (`tierd_codecs::columnar::count_groups`:
//! shredded property columns, `_props` only where a key spilled, conditions evaluated a column at a time).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use serde_json::Value;
use tierd_codecs::columnar::{GroupCountRequest, ScanRequest};
use tierd_codecs::{dedup_key, DedupKey, RowFilter, Xxh3State};

use crate::catalog::{CatalogSnapshot, Format, SegmentMeta};
use crate::error::{Result, StoreError};
use crate::layout::SegmentId;
use crate::read::SegmentSource;

pub use tierd_codecs::condition::{property, Filter, GroupBy, Op};

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub project: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub event: Option<String>,
    pub filters: Vec<Filter>,
    pub group_by: GroupBy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub total: u64,
    /// (group key, count), by count descending then key.
    pub rows: Vec<(Value, u64)>,
    pub segments_scanned: u64,
    pub bytes_scanned: u64,
    /// Each segment read and the bytes read from it, for read heat.
    pub segments_read: Vec<(SegmentId, u64)>,
}

impl Query {
    pub fn validate(&self) -> Result<()> {
        crate::layout::validate_project(&self.project).map_err(StoreError::InvalidQuery)?;
        if self.from_ms >= self.to_ms {
            return Err(StoreError::InvalidQuery(format!(
                "from ({}) must be before to ({}); the window is [from, to)",
                self.from_ms, self.to_ms
            )));
        }
        Ok(())
    }

    /// What to read: the window, the event name, and only the properties the filters and the group key use.
    fn scan_request(&self) -> ScanRequest {
        let lifted = |p: &str| matches!(p, "distinct_id" | "$insert_id" | "time");
        let mut props: Vec<String> = self.filters.iter().map(|f| f.property.clone()).collect();
        if let GroupBy::Property(p) = &self.group_by {
            props.push(p.clone());
        }
        props.retain(|p| !lifted(p));
        props.sort();
        props.dedup();
        ScanRequest { from_ms: self.from_ms, to_ms: self.to_ms, event: self.event.clone(), properties: Some(props) }
    }
}

/// Dedup keys are already uniform 128-bit hashes: hash them by taking 64 bits.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// Sentinel group for a winning copy that the filters reject.
const FILTERED_OUT: u32 = u32::MAX;

/// How the segments of one UTC day are read.
///
/// Every copy of an event lies in the same day: the dedup key holds the exact `time_ms`, and every event of a
/// segment lies in the segment's day ([`SegmentMeta::day`]). So dedup never has to look across days, and a day
/// whose lookup returned a single segment that holds no two copies of an event needs no dedup at all. Every
/// Parquet segment is such a segment: the rewriter writes it from events deduplicated by the same key
/// (`tierd_codecs::dedup::dedup_split` in `crate::rewrite`; recompress re-writes one columnar segment's content as
/// it is). Side segments of removed duplicates are Parquet too but never returned by
/// [`CatalogSnapshot::lookup`], and a rewrite swaps its inputs for its output in one commit, so no snapshot holds
/// both.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DayPlan<'a> {
    /// The day's only segment, columnar: counted per event name from its `time` and `event` columns alone.
    CountOnly(&'a Arc<SegmentMeta>),
    /// The day's only segment, columnar: its rows in the window that meet the conditions counted per group key from
    /// the columns the conditions and the key read, without building events.
    Grouped(&'a Arc<SegmentMeta>),
    /// Every event of the day's segments in the window is built and deduplicated (the copy ingested last wins),
    /// then filtered and grouped.
    Scan(&'a [Arc<SegmentMeta>]),
}

/// What a day that needs no dedup may be answered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shortcut {
    /// Nothing: every day is scanned (the reference path; and the one that reads what tombstones need).
    None,
    /// [`DayPlan::CountOnly`], for a query [`Query::answered_by_event_counts`].
    EventCounts,
    /// [`DayPlan::Grouped`].
    GroupCounts,
}

impl Query {
    /// Whether per-event-name counts of the events in the window (and of `event`, when given) answer the query:
    /// no property filter, and no group key but the event name.
    fn answered_by_event_counts(&self) -> bool {
        self.filters.is_empty() && matches!(self.group_by, GroupBy::None | GroupBy::Event)
    }

    /// The shortcut this query takes on days that need no dedup, if `allowed`.
    fn shortcut(&self, allowed: bool) -> Shortcut {
        match (allowed, self.answered_by_event_counts()) {
            (false, _) => Shortcut::None,
            (true, true) => Shortcut::EventCounts,
            (true, false) => Shortcut::GroupCounts,
        }
    }
}

/// Splits `segments` (as [`CatalogSnapshot::lookup`] returns them: by day, then id) into one plan per UTC day, in
/// day order. A day of one Parquet segment takes `shortcut` ([`DayPlan::CountOnly`] or [`DayPlan::Grouped`]);
/// every other day is [`DayPlan::Scan`]. The days are found by comparing [`SegmentMeta::day`], not trusted from the
/// order alone: a day split in two would count two copies of an event twice.
fn plan_days(segments: &[Arc<SegmentMeta>], shortcut: Shortcut) -> Vec<DayPlan<'_>> {
    let sorted = segments.is_sorted_by_key(|m| m.day);
    debug_assert!(sorted, "lookup returns segments by day");
    segments
        .chunk_by(|a, b| a.day == b.day)
        .map(|day| match (day, shortcut) {
            ([only], Shortcut::EventCounts) if sorted && only.format == Format::Parquet => DayPlan::CountOnly(only),
            ([only], Shortcut::GroupCounts) if sorted && only.format == Format::Parquet => DayPlan::Grouped(only),
            _ => DayPlan::Scan(day),
        })
        .collect()
}

/// The groups of a query's answer: their keys, and the id of each key: a string key by the string, any other by its
/// JSON text (which tells `1` from `1.0`; a string and its JSON text never meet, they are in two maps).
#[derive(Default)]
struct Groups {
    keys: Vec<Value>,
    strings: HashMap<String, u32, Xxh3State>,
    others: HashMap<String, u32, Xxh3State>,
    /// What the keys hold, about: each key's JSON text twice (the value and the map's key; a string's as if it had
    /// nothing to escape) and bookkeeping.
    bytes: u64,
}

impl Groups {
    fn id(&mut self, key: Value) -> u32 {
        match key {
            Value::String(s) => match self.strings.get(s.as_str()) {
                Some(id) => *id,
                None => {
                    let id = self.add(Value::String(s.clone()), s.len() as u64 + 2);
                    self.strings.insert(s, id);
                    id
                }
            },
            other => {
                let text = other.to_string();
                match self.others.get(&text) {
                    Some(id) => *id,
                    None => {
                        let id = self.add(other, text.len() as u64);
                        self.others.insert(text, id);
                        id
                    }
                }
            }
        }
    }

    fn add(&mut self, key: Value, text_len: u64) -> u32 {
        self.keys.push(key);
        self.bytes += 2 * text_len + limits::GROUP_OVERHEAD_BYTES;
        (self.keys.len() - 1) as u32
    }
}

/// Adds a day's (or the query's) winners to the counts of their groups.
fn fold(counts: &mut Vec<u64>, groups: &Groups, winners: HashMap<DedupKey, (u64, u32), BuildHasherDefault<KeyHasher>>) {
    counts.resize(groups.keys.len(), 0);
    for (_, g) in winners.into_values() {
        if g != FILTERED_OUT {
            counts[g as usize] += 1;
        }
    }
}

/// Runs a query over one catalog snapshot, reading segments through `source` (hot copies, or cold ones in ranges
/// through the cache). Blocking: call from a blocking thread.
///
/// `bytes_scanned` counts the bytes read: a hot segment's whole length, a cold segment's blocks read (from the
/// cache or the object store).
///
/// Days that need no dedup (held by one columnar segment) are counted without building events (see `DayPlan`): a
/// `count(*)`, optionally of one event name and grouped by event name, reads only that segment's `time` and `event`
/// columns; any other query reads the columns its conditions and group key need. The answer is the same as by the
/// general path.
pub fn execute(source: &SegmentSource, snapshot: &CatalogSnapshot, q: &Query) -> Result<QueryResult> {
    execute_planned(source, snapshot, q, true, None, &QueryLimits::default())
}

/// [`execute`] without the events older than `hidden_before_ms` (a project's retention cutoff): events past
/// retention are never answered, even before the retention pass has removed them. The window is clamped to start at
/// the cutoff, so segments wholly past it are not even looked up and a straddling segment is read from the cutoff
/// on (every copy of an event has the event's time, so dedup is not affected); the count-only path still applies.
pub fn execute_retained(
    source: &SegmentSource,
    snapshot: &CatalogSnapshot,
    q: &Query,
    hidden_before_ms: Option<i64>,
) -> Result<QueryResult> {
    execute_hidden(source, snapshot, q, &Hidden { before_ms: hidden_before_ms, rows: None })
}

/// What readers of a project must not see although it is still stored: events past retention, and the rows of
/// deletion requests not carried out yet (tombstones, see [`crate::deletions`]). Both compose.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hidden<'a> {
    /// Events whose time is before this (the retention cutoff).
    pub before_ms: Option<i64>,
    /// Stored rows (copies) this filter matches; `None` in the common case of no pending deletion.
    pub rows: Option<&'a RowFilter>,
}

/// [`execute_retained`] that also drops the stored rows `hidden.rows` matches before dedup, so a deleted copy never
/// wins nor counts, exactly as if the rewrite that removes it had run. With tombstones, days are always scanned
/// (the shortcuts read no sequences); without them this is [`execute_retained`].
pub fn execute_hidden(
    source: &SegmentSource,
    snapshot: &CatalogSnapshot,
    q: &Query,
    hidden: &Hidden<'_>,
) -> Result<QueryResult> {
    execute_limited(source, snapshot, q, hidden, &QueryLimits::default())
}

/// [`execute_hidden`] within `limits`: the memory of its dedup state and groups (per query, and from a pool all
/// queries share), the number of groups, and a cancellation flag (a timeout, a client that went away). A query that
/// crosses one fails with the limit named and frees what it held; it never grows past it.
pub fn execute_limited(
    source: &SegmentSource,
    snapshot: &CatalogSnapshot,
    q: &Query,
    hidden: &Hidden<'_>,
    limits: &QueryLimits<'_>,
) -> Result<QueryResult> {
    q.validate()?;
    let from_ms = hidden.before_ms.map_or(q.from_ms, |cutoff| q.from_ms.max(cutoff));
    if from_ms >= q.to_ms {
        return Ok(QueryResult {
            total: 0,
            rows: Vec::new(),
            segments_scanned: 0,
            bytes_scanned: 0,
            segments_read: Vec::new(),
        });
    }
    let q = Query { from_ms, ..q.clone() };
    match hidden.rows {
        None => execute_planned(source, snapshot, &q, true, None, limits),
        Some(rows) => execute_planned(source, snapshot, &q, false, Some(rows), limits),
    }
}

/// [`execute`], with the shortcuts for days that need no dedup allowed or not (tests compare the two).
fn execute_planned(
    source: &SegmentSource,
    snapshot: &CatalogSnapshot,
    q: &Query,
    shortcuts: bool,
    hidden_rows: Option<&RowFilter>,
    limits: &QueryLimits<'_>,
) -> Result<QueryResult> {
    q.validate()?;
    let segments = snapshot.lookup(&q.project, q.from_ms, q.to_ms);
    let mut req = q.scan_request();
    if let (Some(f), Some(props)) = (hidden_rows, req.properties.as_mut()) {
        // The hidden rows are told apart by properties the query may not read.
        props.extend(
            f.properties().into_iter().filter(|p| !matches!(p.as_str(), "distinct_id" | "$insert_id" | "time")),
        );
        props.sort();
        props.dedup();
    }
    let mut groups = Groups::default();
    // Events per group id: counted without dedup (count-only days), or the winners of each day once it is read.
    let mut counts: Vec<u64> = Vec::new();
    let mut memory = limits.reservation();
    let mut bytes_scanned = 0u64;
    let mut segments_counted = 0u64;
    let mut segments_read = Vec::with_capacity(segments.len());
    // Dedup never crosses days (every copy of an event has its time), so a day's winners are folded into the counts
    // and freed before the next day is read: memory follows the largest day, not the window. (Only when the lookup
    // is ordered by day, as it is; otherwise one dedup map spans the query.)
    let per_day = segments.is_sorted_by_key(|m| m.day);
    let mut winners: HashMap<DedupKey, (u64, u32), BuildHasherDefault<KeyHasher>> = HashMap::default();
    let grouped = GroupCountRequest { scan: req.clone(), filters: q.filters.clone(), group_by: q.group_by.clone() };
    let plans = plan_days(&segments, q.shortcut(shortcuts));
    // The days that need no dedup first, in parallel; their counts are added up in day order below.
    let counted: Vec<DayPlan<'_>> = plans.iter().filter(|p| !matches!(p, DayPlan::Scan(_))).copied().collect();
    let mut counted = shortcut::count_days(source, &counted, &req, &grouped, limits, &mut memory)?.into_iter();
    for day in plans {
        limits.check_cancelled()?;
        match day {
            DayPlan::CountOnly(_) | DayPlan::Grouped(_) => {
                let day = counted.next().expect("one count per day that needs no dedup");
                bytes_scanned += day.bytes_read;
                segments_read.push((day.segment, day.bytes_read));
                segments_counted += 1;
                for (key, n) in day.rows {
                    let g = groups.id(key) as usize;
                    if counts.len() <= g {
                        counts.resize(g + 1, 0);
                    }
                    counts[g] += n;
                }
                memory.track(winners.len(), &groups)?;
            }
            DayPlan::Scan(metas) => {
                for meta in metas {
                    limits.check_cancelled()?;
                    // The first limit a row crosses; the rest of the segment is skipped, then the query fails.
                    let mut stopped: Option<StoreError> = None;
                    let read = source.scan(meta, &req, |se| {
                        if stopped.is_some() || hidden_rows.is_some_and(|f| f.matches(&se)) {
                            return;
                        }
                        let key = dedup_key(&q.project, &se.event);
                        if let Some((seq, _)) = winners.get(&key) {
                            if *seq >= se.seq {
                                return;
                            }
                        }
                        let group = if q.filters.iter().all(|f| f.matches(&se.event)) {
                            groups.id(q.group_by.key(&se.event))
                        } else {
                            FILTERED_OUT
                        };
                        winners.insert(key, (se.seq, group));
                        if let Err(e) = memory.track(winners.len(), &groups).and_then(|()| limits.check_cancelled()) {
                            stopped = Some(e);
                        }
                    })?;
                    if let Some(e) = stopped {
                        return Err(e);
                    }
                    bytes_scanned += read;
                    segments_read.push((meta.id, read));
                }
                if per_day {
                    fold(&mut counts, &groups, std::mem::take(&mut winners));
                }
            }
        }
    }
    fold(&mut counts, &groups, winners);
    let total = counts.iter().sum();
    let mut rows: Vec<(Value, u64)> = match q.group_by {
        GroupBy::None => Vec::new(),
        _ => groups.keys.into_iter().zip(counts).filter(|(_, c)| *c > 0).collect(),
    };
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| tie_order(&a.0).cmp(&tie_order(&b.0))));
    metrics::counter!("tierd_query_segments_scanned_total").increment(segments.len() as u64);
    metrics::counter!("tierd_query_segments_counted_total").increment(segments_counted);
    metrics::counter!("tierd_query_bytes_scanned_total").increment(bytes_scanned);
    Ok(QueryResult { total, rows, segments_scanned: segments.len() as u64, bytes_scanned, segments_read })
}

#[cfg(test)]
mod count_only_tests;
#[cfg(test)]
mod grouped_tests;
mod limits;
#[cfg(test)]
mod limits_tests;
mod shortcut;

pub use limits::{QueryLimits, QueryMemory};

/// How rows with equal counts are ordered: string keys by their bytes (so `"Diskuse"` comes before
/// `"Diskuse s wikipedistou"`), before every other key, which is ordered by its JSON text.
fn tie_order(key: &Value) -> (bool, std::borrow::Cow<'_, str>) {
    match key {
        Value::String(s) => (false, std::borrow::Cow::Borrowed(s.as_str())),
        other => (true, std::borrow::Cow::Owned(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tierd_codecs::Event;

    use super::*;

    fn ev(props: Value) -> Event {
        Event {
            event: "E".into(),
            time_ms: 1_700_000_000_000,
            distinct_id: "u1".into(),
            insert_id: "i1".into(),
            properties: props.as_object().unwrap().clone(),
        }
    }

    fn f(property: &str, op: Op, value: Value) -> Filter {
        Filter { property: property.into(), op, value }
    }

    #[test]
    fn filters_compare_numbers_numerically_and_strings_bytewise() {
        let e = ev(json!({"n": 3, "x": 2.5, "s": "b", "z": null, "big": u64::MAX}));
        assert!(f("n", Op::Eq, json!(3.0)).matches(&e));
        assert!(f("n", Op::Lt, json!(3.5)).matches(&e));
        assert!(!f("n", Op::Lt, json!(3)).matches(&e));
        assert!(f("n", Op::Lte, json!(3)).matches(&e));
        assert!(f("x", Op::Gt, json!(2)).matches(&e));
        assert!(f("big", Op::Gt, json!(i64::MAX)).matches(&e), "u64 beyond i64 compares exactly");
        assert!(f("s", Op::Gte, json!("a")).matches(&e));
        assert!(!f("s", Op::Lt, json!(1)).matches(&e), "string vs number is never ordered");
        assert!(!f("n", Op::Eq, json!("3")).matches(&e), "no string/number coercion");
        assert!(f("missing", Op::Neq, json!(1)).matches(&e), "neq is true when missing");
        assert!(!f("missing", Op::Eq, json!(null)).matches(&e));
        assert!(!f("z", Op::Exists, Value::Null).matches(&e), "null is not set");
        assert!(f("s", Op::Exists, Value::Null).matches(&e));
        assert!(f("distinct_id", Op::Eq, json!("u1")).matches(&e));
        assert!(f("time", Op::Gte, json!(1_700_000_000_000i64)).matches(&e));
        assert!(f("$insert_id", Op::Eq, json!("i1")).matches(&e));
    }

    #[test]
    fn group_by_parses_and_keys() {
        assert_eq!(GroupBy::parse(None).unwrap(), GroupBy::None);
        assert_eq!(GroupBy::parse(Some("event")).unwrap(), GroupBy::Event);
        assert_eq!(GroupBy::parse(Some("properties.$os")).unwrap(), GroupBy::Property("$os".into()));
        assert!(GroupBy::parse(Some("properties.")).is_err());
        assert!(GroupBy::parse(Some("os")).is_err());
        let e = ev(json!({"o": {"a": [1]}}));
        assert_eq!(GroupBy::Property("o".into()).key(&e), json!({"a": [1]}));
        assert_eq!(GroupBy::Property("nope".into()).key(&e), Value::Null);
        assert_eq!(GroupBy::Event.key(&e), json!("E"));
    }
}
