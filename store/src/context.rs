//! What every part of the store works with, built once per node and shared: the data directory's layout, the
//! catalog, the clock, the failpoints, the hot tier's file system, the cold tier and the runtime that drives it.
//!
//! The hot writer, rewriter, mover, garbage collector, trash and recovery all take a [`StoreContext`] instead of
//! each listing the same handles; a test swaps one part (a manual clock, a [`crate::durable::FaultyFs`], a faulty
//! cold store) in one place.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::runtime::Handle;

use crate::budget::IoBudget;
use crate::catalog::Catalog;
use crate::clock::Clock;
use crate::cold::ColdStore;
use crate::durable::{self, HotFs, OsFs};
use crate::error::{Result, StoreError};
use crate::failpoint::Failpoints;
use crate::layout::{Layout, Location, Tier};

#[derive(Clone)]
pub struct StoreContext {
    pub layout: Layout,
    pub catalog: Arc<Catalog>,
    pub clock: Arc<dyn Clock>,
    pub failpoints: Arc<Failpoints>,
    /// The hot tier's file operations ([`OsFs`] unless a test injects faults).
    pub fs: Arc<dyn HotFs>,
    /// The cold tier as background work sees it: paced by the node's IO budget.
    pub cold: Arc<ColdStore>,
    /// The runtime that drives the object store for blocking callers.
    pub handle: Handle,
    /// Free bytes background writers (rewrites, promotions, restores) leave on the hot disk: ingest's own reserve
    /// plus a margin, so that background work stops before ingest is refused (0: no check).
    pub disk_reserve_bytes: u64,
    /// Copies that failed their checksum while another copy exists, waiting to be replaced ([`crate::repair`]).
    pub repairs: Arc<crate::repair::RepairQueue>,
}

impl std::fmt::Debug for StoreContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreContext")
            .field("root", &self.layout.root())
            .field("cold", &self.cold.url())
            .finish_non_exhaustive()
    }
}

impl StoreContext {
    /// A context over the real file system.
    pub fn new(
        layout: Layout,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        failpoints: Arc<Failpoints>,
        cold: Arc<ColdStore>,
        handle: Handle,
    ) -> Self {
        let repairs = Arc::new(crate::repair::RepairQueue::new(crate::repair::DEFAULT_MAX_PENDING));
        Self { layout, catalog, clock, failpoints, fs: Arc::new(OsFs), cold, handle, disk_reserve_bytes: 0, repairs }
    }

    /// The same context with another repair queue (its bound: `passes.max_pending_repairs`).
    pub fn with_repairs(mut self, queue: Arc<crate::repair::RepairQueue>) -> Self {
        self.repairs = queue;
        self
    }

    /// The same context with background writers keeping `bytes` free on the hot disk.
    pub fn with_disk_reserve(mut self, bytes: u64) -> Self {
        self.disk_reserve_bytes = bytes;
        self
    }

    /// Fails, before anything is written, when writing `bytes` more to the hot disk would leave less free than the
    /// background reserve. Checked by every background writer of the hot disk before it starts (before its intent
    /// is recorded); when space comes back the next attempt goes ahead (nothing to restart).
    pub fn check_disk_reserve(&self, what: &'static str, bytes: u64) -> Result<()> {
        crate::space::check(
            self.layout.root(),
            what,
            crate::space::BACKGROUND_RESERVE,
            self.disk_reserve_bytes,
            bytes,
            "the background reserve: hot.min_free_bytes + passes.disk_reserve_bytes",
        )
    }

    /// The same context over another hot-tier file system (e.g. a [`crate::durable::FaultyFs`]).
    pub fn with_fs(mut self, fs: Arc<dyn HotFs>) -> Self {
        self.fs = fs;
        self
    }

    /// The same context with other failpoints.
    pub fn with_failpoints(mut self, failpoints: Arc<Failpoints>) -> Self {
        self.failpoints = failpoints;
        self
    }

    /// The node's IO budget, which every background byte and request draws from.
    pub fn budget(&self) -> &Arc<IoBudget> {
        self.cold.budget()
    }

    /// The absolute path of a hot location; an error for a location that would leave the data directory.
    pub fn resolve(&self, location: &str) -> Result<PathBuf> {
        self.layout.resolve(location).ok_or_else(|| StoreError::InvalidLocation { location: location.to_string() })
    }

    /// Deletes one copy (absent is fine): a hot file (and its directory entry, durably) or a cold object. Blocking.
    pub fn delete_copy(&self, location: &Location) -> Result<()> {
        match location.tier {
            Tier::Cold => self.handle.block_on(self.cold.delete(&location.path)),
            Tier::Hot => durable::remove_synced(self.fs.as_ref(), &self.resolve(&location.path)?).map(|_| ()),
        }
    }
}
