//! The bounds of one query: how much memory its dedup state and groups may hold (alone, and out of a pool every
//! query of the process shares), how many groups it may build, and a flag that stops it (a timeout, a client that
//! went away). A query crossing a bound fails at once with the bound's config key named, and frees what it held.
//!
//! Memory is estimated, not measured: a dedup entry is a 16-byte key and a 12-byte value in a hash map (about
//! [`WINNER_BYTES`] with the table's control bytes and spare capacity), a group its key's JSON text twice plus
//! bookkeeping (and the same for the groups of the days counted without dedup, while they are held). The estimate is what is reserved from the shared pool, in [`RESERVE_STEP`] steps so that the pool's
//! atomic is touched once per step, not per row.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tierd_codecs::columnar::GroupProgress;

use super::Groups;
use crate::error::{Result, StoreError};

/// Estimated bytes of one dedup entry (key, sequence and group id, hash table overhead at its load factor).
pub const WINNER_BYTES: u64 = 48;
/// Estimated bytes of one group beyond its key's text.
pub const GROUP_OVERHEAD_BYTES: u64 = 96;
/// Reservations from the shared pool grow in steps of this.
pub const RESERVE_STEP: u64 = 1 << 20;

/// The memory every running query holds together, and its bound (`query.max_total_memory_bytes`).
#[derive(Debug)]
pub struct QueryMemory {
    used: AtomicU64,
    limit: AtomicU64,
}

impl QueryMemory {
    pub fn new(limit: u64) -> Self {
        QueryMemory { used: AtomicU64::new(0), limit: AtomicU64::new(limit) }
    }

    /// A new bound (a config reload); queries already holding more keep it until they end.
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Bytes reserved by running queries now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, bytes: u64) -> std::result::Result<(), (u64, u64)> {
        let limit = self.limit.load(Ordering::Relaxed);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= limit)
            })
            .map(|_| ())
            .map_err(|used| (used, limit))
    }

    fn give_back(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// The bounds one query runs within. `Default`: none (tests, internal callers).
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits<'a> {
    /// Most estimated bytes of this query's dedup state and groups (`query.max_memory_bytes`).
    pub max_memory_bytes: u64,
    /// Most groups (distinct `group_by` values) (`query.max_groups`).
    pub max_groups: usize,
    /// The pool shared by all queries, if any.
    pub shared: Option<&'a QueryMemory>,
    /// Set from outside to stop the query (a timeout, a client gone); checked per row.
    pub cancel: Option<&'a AtomicBool>,
    /// Why `cancel` would be set, for the error (e.g. "ran past query.timeout_ms = 30000").
    pub cancel_reason: &'a str,
    /// Threads that count the days needing no dedup, at most (`query.threads`); 1 counts them on the caller's.
    pub threads: usize,
}

impl Default for QueryLimits<'_> {
    fn default() -> Self {
        QueryLimits {
            max_memory_bytes: u64::MAX,
            max_groups: usize::MAX,
            shared: None,
            cancel: None,
            cancel_reason: "",
            threads: 1,
        }
    }
}

impl<'a> QueryLimits<'a> {
    pub(super) fn reservation(&self) -> Reservation<'a> {
        Reservation { held: 0, limits: *self }
    }

    pub(super) fn check_cancelled(&self) -> Result<()> {
        match self.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(StoreError::QueryCancelled(self.cancel_reason.into())),
            _ => Ok(()),
        }
    }
}

/// What one query holds of the shared pool; given back when dropped.
pub(super) struct Reservation<'a> {
    held: u64,
    limits: QueryLimits<'a>,
}

impl Reservation<'_> {
    /// Checks the query's state against its bounds, reserving more of the pool as it grows.
    pub(super) fn track(&mut self, winners: usize, groups: &Groups) -> Result<()> {
        self.check(winners, groups.keys.len(), groups.bytes)
    }

    /// [`Reservation::track`] while days are counted without dedup ([`super::shortcut`]): `held` is what their
    /// counts hold together (groups and key bytes added up), `largest` the most groups of one of them (the query
    /// has at least as many).
    pub(super) fn track_counted(&mut self, largest: usize, held: GroupProgress) -> Result<()> {
        let bytes =
            (held.groups as u64).saturating_mul(GROUP_OVERHEAD_BYTES).saturating_add(held.key_bytes.saturating_mul(2));
        self.check(0, largest, bytes)
    }

    fn check(&mut self, winners: usize, group_count: usize, group_bytes: u64) -> Result<()> {
        let l = &self.limits;
        if group_count > l.max_groups {
            return Err(StoreError::QueryTooLarge(format!(
                "more than {} groups (query.max_groups): group by a property with fewer values, or narrow the \
                 window or the filters",
                l.max_groups
            )));
        }
        let bytes = (winners as u64).saturating_mul(WINNER_BYTES).saturating_add(group_bytes);
        if bytes > l.max_memory_bytes {
            return Err(StoreError::QueryTooLarge(format!(
                "the query needs more than {} bytes for its dedup state and groups (query.max_memory_bytes): narrow \
                 the window, or group by a property with fewer values",
                l.max_memory_bytes
            )));
        }
        if bytes <= self.held {
            return Ok(());
        }
        let Some(pool) = l.shared else {
            self.held = bytes;
            return Ok(());
        };
        let want = bytes.div_ceil(RESERVE_STEP).saturating_mul(RESERVE_STEP).min(l.max_memory_bytes.max(bytes));
        let more = want - self.held;
        match pool.try_take(more) {
            Ok(()) => {
                self.held = want;
                Ok(())
            }
            Err((used, limit)) => Err(StoreError::QueryBusy(format!(
                "running queries hold {used} of {limit} bytes (query.max_total_memory_bytes); this one needs \
                 {more} more: retry shortly"
            ))),
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(pool) = self.limits.shared {
            pool.give_back(self.held);
        }
    }
}
