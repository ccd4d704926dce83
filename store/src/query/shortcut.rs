//! The days that need no dedup (`DayPlan::CountOnly`, `DayPlan::Grouped`), read up to [`QueryLimits::threads`] at a
//! time: each is one segment counted on its own, so they are independent until their counts are added up, which
//! the caller does afterwards in day order.
//!
//! The bounds hold while they run: after every batch of rows a worker reports its segment's groups, and the query's
//! reservation is checked against everything held, the segments being counted and those already counted (memory
//! estimates added up), with the most groups of any one segment against `max_groups` (the query has at least as
//! many; the caller checks the exact union when it adds the counts up). The first bound crossed, the stop flag, or
//! a read that fails stops every worker at its next batch; the query then fails with that error.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::Value;
use tierd_codecs::columnar::{GroupCountRequest, GroupProgress, ScanRequest};

use super::limits::Reservation;
use super::{DayPlan, GroupBy, QueryLimits};
use crate::error::{Result, StoreError};
use crate::layout::SegmentId;
use crate::read::SegmentSource;

/// One day's counts: per group key (`null` without grouping), and what was read.
pub(super) struct DayCounts {
    pub(super) segment: SegmentId,
    pub(super) bytes_read: u64,
    pub(super) rows: Vec<(Value, u64)>,
}

/// What the workers share: the query's reservation, each worker's segment in progress, and the counts done.
struct Shared<'m, 'a> {
    memory: &'m mut Reservation<'a>,
    in_flight: Vec<GroupProgress>,
    done: GroupProgress,
    /// The most groups of one segment so far.
    largest: usize,
    failed: Option<StoreError>,
}

impl Shared<'_, '_> {
    /// Checks the bounds against what is held now; records the first error.
    fn check(&mut self, limits: &QueryLimits<'_>) -> bool {
        if self.failed.is_some() {
            return false;
        }
        let mut held = self.done;
        for p in &self.in_flight {
            held.groups += p.groups;
            held.key_bytes += p.key_bytes;
        }
        let largest = self.in_flight.iter().map(|p| p.groups).fold(self.largest, usize::max);
        match limits.check_cancelled().and_then(|()| self.memory.track_counted(largest, held)) {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }
}

/// Reads `days` (each `DayPlan::CountOnly` or `DayPlan::Grouped`) on up to `limits.threads` threads; returns their
/// counts in the order of `days`.
pub(super) fn count_days(
    source: &SegmentSource,
    days: &[DayPlan<'_>],
    req: &ScanRequest,
    grouped: &GroupCountRequest,
    limits: &QueryLimits<'_>,
    memory: &mut Reservation<'_>,
) -> Result<Vec<DayCounts>> {
    let threads = limits.threads.clamp(1, days.len().max(1));
    let shared = Mutex::new(Shared {
        memory,
        in_flight: vec![GroupProgress::default(); threads],
        done: GroupProgress::default(),
        largest: 0,
        failed: None,
    });
    let lock = || shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let results: Vec<Mutex<Option<DayCounts>>> = days.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);

    let work = |worker: usize| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= days.len() || !lock().check(limits) {
            return;
        }
        let progress = |p: GroupProgress| {
            let mut shared = lock();
            shared.in_flight[worker] = p;
            shared.check(limits)
        };
        let counted = match days[i] {
            DayPlan::CountOnly(meta) => source.count_by_event(meta, req).map(|(names, read)| {
                let key = |name: String| match grouped.group_by {
                    GroupBy::Event => Value::String(name),
                    _ => Value::Null,
                };
                (meta.id, names.into_iter().map(|(name, n)| (key(name), n)).collect::<Vec<_>>(), read)
            }),
            DayPlan::Grouped(meta) => {
                source.count_groups(meta, grouped, progress).map(|(rows, read)| (meta.id, rows, read))
            }
            DayPlan::Scan(_) => unreachable!("only days that need no dedup are counted here"),
        };
        let mut shared = lock();
        match counted {
            Ok((segment, rows, bytes_read)) => {
                shared.in_flight[worker] = GroupProgress::default();
                let key_bytes: u64 = rows.iter().map(|(key, _)| key_bytes(key)).sum();
                shared.done.groups += rows.len();
                shared.done.key_bytes += key_bytes;
                shared.largest = shared.largest.max(rows.len());
                if !shared.check(limits) {
                    return;
                }
                drop(shared);
                *results[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(DayCounts { segment, bytes_read, rows });
            }
            Err(e) => {
                shared.failed.get_or_insert(e);
                return;
            }
        }
    };
    if threads == 1 {
        work(0);
    } else {
        std::thread::scope(|s| {
            for worker in 1..threads {
                let work = &work;
                s.spawn(move || work(worker));
            }
            work(0);
        });
    }
    if let Some(e) = shared.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner).failed {
        return Err(e);
    }
    Ok(results
        .into_iter()
        .map(|r| r.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner))
        .collect::<Option<Vec<_>>>()
        .expect("every day is counted when no worker failed"))
}

/// The bytes of a group key's text, as `count_groups` reports them (8 for a number).
fn key_bytes(key: &Value) -> u64 {
    match key {
        Value::String(s) => s.len() as u64,
        Value::Number(_) => 8,
        other => other.to_string().len() as u64,
    }
}
