//! The tier-aware catalog: every segment tierd holds, where it is, and in what state.
//!
//! sled is the durable store; an in-memory [`CatalogSnapshot`] (persistent maps, cheap to clone) serves lookups.
//! Writers are serialized by one lock: each [`Catalog::commit`] applies its changes and the new generation in one
//! sled transaction, flushes (fsync) and only then publishes the new snapshot. Readers take an `Arc` of the snapshot
//! and see one generation, whole: lookups are snapshot-consistent without touching sled.
//!
//! Schema (sled trees; values are JSON so an operator can read them with any sled tool; see [`schema`]):
//! - `meta`: `generation` -> u64 (big endian), `schema_version` -> u32.
//! - `segments`: segment id (26-char ULID) -> [`SegmentMeta`].
//! - `leases`: lease id -> [`LeaseRecord`]: a promise that the listed segments stay readable until `expires_at_ms`.
//! - `intents`: `tier:path` of a new copy -> [`Intent`]: a copy being written (by a rewrite, a move or a restore)
//!   that no committed record names yet.
//!
//! Readers inside the process [`Catalog::pin`] the snapshot they read; garbage collection never deletes a segment
//! retired at or after the oldest pinned generation.
//!
//! Files: [`record`] (the segment record), `change` (what a commit applies), `db` (open, commit, intents, pins),
//! `intents`, `leases`, `schema` (versions and migrations), `snapshot` (the in-memory view).

mod change;
mod db;
mod intents;
mod leases;
pub mod record;
mod schema;
mod snapshot;
#[cfg(test)]
mod tests;

pub use change::CatalogChange;
pub use db::{Catalog, Pinned};
pub use intents::{Intent, IntentKind};
pub use leases::{Lease, LeaseGrants, LeaseRecord};
pub use record::{
    BlockChecksums, Codec, DroppedLocation, Format, Placement, Retirement, Role, SegmentMeta, SegmentState,
};
pub use snapshot::CatalogSnapshot;

pub use crate::layout::{Location, Tier};

/// Opens a catalog that this process just closed. sled's flusher thread may hold a dropped database (and its file
/// lock) for a moment after `drop`; a new process never meets this, a test reopening in-process does.
#[cfg(test)]
pub(crate) fn open_retrying(dir: &std::path::Path) -> Catalog {
    let mut tries = 0;
    loop {
        match Catalog::open(dir) {
            Ok(c) => return c,
            Err(e) if tries < 100 && e.to_string().contains("could not acquire lock") => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopen {}: {e}", dir.display()),
        }
    }
}
