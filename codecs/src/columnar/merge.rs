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

/// A stream of events (`T`: decoded, or [`super::MergeEvent`]s) in (event, time, seq) order.
pub trait EventSource<E, T = StoredEvent> {
    /// The next event; `None` at the end.
    fn next_event(&mut self) -> Result<Option<T>, E>;
}

impl<E, T, S: EventSource<E, T> + ?Sized> EventSource<E, T> for Box<S> {
    fn next_event(&mut self) -> Result<Option<T>, E> {
        (**self).next_event()
    }
}

/// What the merge reads of an event: its sort key and its dedup key.
pub trait MergeItem {
    fn name(&self) -> &str;
    fn time_ms(&self) -> i64;
    fn seq(&self) -> u64;
    fn dedup_key(&self, project: &str) -> DedupKey;
}

impl MergeItem for StoredEvent {
    fn name(&self) -> &str {
        &self.event.event
    }

    fn time_ms(&self) -> i64 {
        self.event.time_ms
    }

    fn seq(&self) -> u64 {
        self.seq
    }

    fn dedup_key(&self, project: &str) -> DedupKey {
        dedup_key(project, &self.event)
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
struct Head<T> {
    event: T,
    source: usize,
}

impl<T: MergeItem> Head<T> {
    fn key(&self) -> (&str, i64, u64, usize) {
        (self.event.name(), self.event.time_ms(), self.event.seq(), self.source)
    }
}

impl<T: MergeItem> PartialEq for Head<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl<T: MergeItem> Eq for Head<T> {}

impl<T: MergeItem> PartialOrd for Head<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T: MergeItem> Ord for Head<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// Merges `sources` into `kept` (see the module documentation). With `dedup = Some(project)`, copies of one event
/// other than the last ingested go to `removed`; with `None`, every event goes to `kept` (a merge of runs whose
/// dedup comes later).
pub fn merge<E, T: MergeItem, S: EventSource<E, T>>(
    sources: &mut [S],
    dedup: Option<&str>,
    max_run_events: usize,
    kept: &mut dyn FnMut(T) -> Result<(), E>,
    removed: &mut dyn FnMut(T) -> Result<(), E>,
) -> Result<MergeStats, MergeError<E>> {
    let mut heap = BinaryHeap::with_capacity(sources.len());
    for (i, source) in sources.iter_mut().enumerate() {
        if let Some(event) = source.next_event()? {
            heap.push(Reverse(Head { event, source: i }));
        }
    }
    let mut stats = MergeStats::default();
    let mut run: Vec<T> = Vec::new();
    while let Some(Reverse(head)) = heap.pop() {
        let Head { event, source } = head;
        if let Some(next) = sources[source].next_event()? {
            let (a, b) = (&event, &next);
            if (b.name(), b.time_ms(), b.seq()) < (a.name(), a.time_ms(), a.seq()) {
                return Err(MergeError::Merge(ColumnarError::Corrupt {
                    segment_id: format!("(merge input {source})"),
                    message: format!(
                        "events out of (event, time, seq) order: seq {} ({:?}, {}) after seq {} ({:?}, {})",
                        b.seq(),
                        b.name(),
                        b.time_ms(),
                        a.seq(),
                        a.name(),
                        a.time_ms()
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
        if run.first().is_some_and(|r| r.time_ms() != event.time_ms() || r.name() != event.name()) {
            flush_run(project, &mut run, kept, removed, &mut stats)?;
        }
        if run.len() >= max_run_events {
            return Err(MergeError::Merge(ColumnarError::RunTooLarge {
                event: event.name().to_owned(),
                time_ms: event.time_ms(),
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
fn flush_run<E, T: MergeItem>(
    project: &str,
    run: &mut Vec<T>,
    kept: &mut dyn FnMut(T) -> Result<(), E>,
    removed: &mut dyn FnMut(T) -> Result<(), E>,
    stats: &mut MergeStats,
) -> Result<(), E> {
    if run.len() == 1 {
        stats.kept += 1;
        return kept(run.pop().expect("one event"));
    }
    // The run is in `seq` order, so the last index of a key holds its highest `seq`.
    let keys: Vec<DedupKey> = run.iter().map(|e| e.dedup_key(project)).collect();
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
