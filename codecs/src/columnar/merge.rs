//! The k-way merge of sorted event streams, with the dedup of [`crate::dedup`] applied as it goes.
//!
//! Every source yields its events in (event, time, seq) order ([`super::SortOrder::EventTime`], the order of every
//! columnar segment tierd writes, and of a [`super::SortedRun`]). The merge pops the smallest head, so its output is
//! in that order too, and feeds it to a sink one event at a time: nothing but one head per source and the current
//! run is held.
//!
//! Dedup: two copies of an event have the same dedup key, which includes the event name and the exact time, so
//! they lie in the same run of equal (event, time). The merge collects each such run (across all sources), keeps
//! per key the copy with the highest `seq` (the copy ingested last, as [`crate::dedup_split`]) and hands the others
//! to the `removed` sink, in `seq` order within the run, so both outputs stay sorted. A run is usually one event;
//! one longer than `max_run_events` (that many events of one name in one millisecond) fails the merge with
//! [`ColumnarError::RunTooLarge`] rather than growing without bound.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use super::ColumnarError;
use crate::dedup::{dedup_key, DedupKey};
use crate::event::StoredEvent;

/// A stream of events in (event, time, seq) order.
pub trait EventSource<E> {
    /// The next event; `None` at the end.
    fn next_event(&mut self) -> Result<Option<StoredEvent>, E>;
}

impl<E, S: EventSource<E> + ?Sized> EventSource<E> for Box<S> {
    fn next_event(&mut self) -> Result<Option<StoredEvent>, E> {
        (**self).next_event()
    }
}

/// What a merge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MergeStats {
    /// Events handed to `kept`.
    pub kept: u64,
    /// Copies handed to `removed`.
    pub removed: u64,
}

/// Why a merge failed: a source or sink failed (`E`), or the merge itself found a fault.
#[derive(Debug)]
pub enum MergeError<E> {
    Io(E),
    /// A source out of order, a run too long ([`ColumnarError::RunTooLarge`]).
    Merge(ColumnarError),
}

impl<E> From<E> for MergeError<E> {
    fn from(e: E) -> Self {
        MergeError::Io(e)
    }
}

/// A source's current event, ordered by (event, time, seq, source).
struct Head {
    event: StoredEvent,
    source: usize,
}

impl Head {
    fn key(&self) -> (&str, i64, u64, usize) {
        (self.event.event.event.as_str(), self.event.event.time_ms, self.event.seq, self.source)
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Head {}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// Merges `sources` into `kept` (see the module documentation). With `dedup = Some(project)`, copies of one event
/// other than the last ingested go to `removed`; with `None`, every event goes to `kept` (a merge of runs whose
/// dedup comes later).
pub fn merge<E, S: EventSource<E>>(
    sources: &mut [S],
    dedup: Option<&str>,
    max_run_events: usize,
    kept: &mut dyn FnMut(StoredEvent) -> Result<(), E>,
    removed: &mut dyn FnMut(StoredEvent) -> Result<(), E>,
) -> Result<MergeStats, MergeError<E>> {
    let mut heap = BinaryHeap::with_capacity(sources.len());
    for (i, source) in sources.iter_mut().enumerate() {
        if let Some(event) = source.next_event()? {
            heap.push(Reverse(Head { event, source: i }));
        }
    }
    let mut stats = MergeStats::default();
    let mut run: Vec<StoredEvent> = Vec::new();
    while let Some(Reverse(head)) = heap.pop() {
        let Head { event, source } = head;
        if let Some(next) = sources[source].next_event()? {
            let (a, b) = (&event, &next);
            if (b.event.event.as_str(), b.event.time_ms, b.seq) < (a.event.event.as_str(), a.event.time_ms, a.seq) {
                return Err(MergeError::Merge(ColumnarError::Corrupt {
                    segment_id: format!("(merge input {source})"),
                    message: format!(
                        "events out of (event, time, seq) order: seq {} ({:?}, {}) after seq {} ({:?}, {})",
                        b.seq, b.event.event, b.event.time_ms, a.seq, a.event.event, a.event.time_ms
                    ),
                }));
            }
            heap.push(Reverse(Head { event: next, source }));
        }
        let Some(project) = dedup else {
            kept(event)?;
            stats.kept += 1;
            continue;
        };
        if run.first().is_some_and(|r| r.event.time_ms != event.event.time_ms || r.event.event != event.event.event) {
            flush_run(project, &mut run, kept, removed, &mut stats)?;
        }
        if run.len() >= max_run_events {
            return Err(MergeError::Merge(ColumnarError::RunTooLarge {
                event: event.event.event.clone(),
                time_ms: event.event.time_ms,
                events: run.len() + 1,
            }));
        }
        run.push(event);
    }
    if let Some(project) = dedup {
        flush_run(project, &mut run, kept, removed, &mut stats)?;
    }
    Ok(stats)
}

/// Hands out one run of equal (event, time), in `seq` order: per dedup key the copy with the highest `seq` to
/// `kept`, the others to `removed`.
fn flush_run<E>(
    project: &str,
    run: &mut Vec<StoredEvent>,
    kept: &mut dyn FnMut(StoredEvent) -> Result<(), E>,
    removed: &mut dyn FnMut(StoredEvent) -> Result<(), E>,
    stats: &mut MergeStats,
) -> Result<(), E> {
    if run.len() == 1 {
        stats.kept += 1;
        return kept(run.pop().expect("one event"));
    }
    // The run is in `seq` order, so the last index of a key holds its highest `seq`.
    let keys: Vec<DedupKey> = run.iter().map(|e| dedup_key(project, &e.event)).collect();
    let mut winner: HashMap<DedupKey, usize> = HashMap::with_capacity(run.len());
    for (i, key) in keys.iter().enumerate() {
        winner.insert(*key, i);
    }
    for (i, event) in run.drain(..).enumerate() {
        if winner[&keys[i]] == i {
            stats.kept += 1;
            kept(event)?;
        } else {
            stats.removed += 1;
            removed(event)?;
        }
    }
    Ok(())
}
