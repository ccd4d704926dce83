//! All of tierd's I/O: the hot tier, the sled catalog, leases, crash recovery and the tier-aware read path.
//!
//! `store` carries out what `codecs` encodes and (in later issues) what `policies` decides. Every durable step is
//! ordered and named (see `ARCHITECTURE.md`):
//!
//! - [`hot`]: durable ingest. A single writer thread appends checksummed frames to per-(project, UTC day) row
//!   segments, fsyncs them and commits their new lengths to the catalog in one transaction per group of requests
//!   (group commit), and only then acknowledges. A batch that spans several segments is therefore atomic.
//! - [`catalog`]: the sled catalog of every segment, with an in-memory snapshot for consistent lookups, and leases
//!   that promise readers their segments stay readable.
//! - [`recovery`]: on start, reconciles the catalog with the hot directory: torn tails are cut back to the committed
//!   length, open segments are sealed, unknown files are quarantined (never served, never deleted).
//! - [`read`] and [`query`]: the read path and the reference query engine, which counts deduplicated events.
//! - [`clock`]: the only place that reads time.
//! - [`cold`]: the cold tier's object store (`file://`, `s3://`, ...), with retries, metrics, fault injection and the
//!   IO budget as wrappers around object_store's `ObjectStore`.
//! - [`verify`]: the ETag an S3 server gives an upload, computed locally, so a move can check an upload by the
//!   server's own checksum instead of reading it back.
//! - [`budget`]: the one IO budget every background byte and request draws from.
//! - [`cache`]: the cold-bytes cache on the hot disk (blocks of cold objects, bounded, verified on every read).
//! - [`deletions`]: durable user-deletion requests and the read-time tombstones of the ones not done yet.
//! - [`heat`]: read heat of every segment, counted in memory, persisted in batches, carried over rewrites.
//! - [`space`]: free disk space and the reserves every writer keeps (background, ingest, the catalog's headroom).
//! - [`metrics`]: the one description of every metric the store emits.
//! - [`labels`]: [`labelled_enum!`], the one way to declare an enum that travels as fixed labels.
//! - [`rebuild`]: a stopped node's catalog written anew from the segment files, which describe themselves.

pub mod budget;
pub mod cache;
pub mod catalog;
pub mod clock;
pub mod cold;
pub mod context;
pub mod deletions;
pub mod durable;
pub mod erase;
pub mod error;
pub mod failpoint;
pub mod gc;
pub mod heat;
pub mod hot;
pub mod labels;
pub mod layout;
pub mod metrics;
pub mod moves;
#[cfg(test)]
mod power_loss_tests;
pub mod query;
pub mod read;
pub mod rebuild;
pub mod recovery;
pub mod repair;
pub mod rewrite;
pub mod scrub;
pub mod space;
#[cfg(test)]
pub(crate) mod testing;
pub mod trash;
pub mod verify;

pub use budget::{BudgetConfig, IoBudget};
pub use cache::{BlockCache, CacheConfig};
pub use catalog::{Catalog, CatalogSnapshot, Lease, Role, SegmentMeta, SegmentState};
pub use clock::{Clock, ManualClock, SystemClock};
pub use cold::{ColdConfig, ColdStore, FaultConfig, ObjectInfo};
pub use context::StoreContext;
pub use deletions::{DeletionLimits, DeletionLog, DeletionRequest, DeletionState};
pub use durable::{HotFs, OsFs};
pub use error::StoreError;
pub use failpoint::Failpoints;
pub use heat::{HeatConfig, HeatTracker, HeatView, ReadSource};
pub use layout::{day_of_ms, format_day, SegmentId};
pub use read::SegmentSource;
