//! The tier-aware catalog: every segment tierd holds, where it is, and in what state.
//!
//! sled is the durable store; an in-memory [`CatalogSnapshot`] (persistent maps, cheap to clone) serves lookups.
//! Writers are serialized by one lock: each [`Catalog::commit`] applies its changes and the new generation in one
//! sled transaction, flushes (fsync) and only then publishes the new snapshot. Readers take an `Arc` of the snapshot
//! and see one generation, whole: lookups are snapshot-consistent without touching sled.
//!
//! Schema (sled trees; values are JSON so an operator can read them with any sled tool):
//! - `meta`: `generation` -> u64 (big endian), `schema_version` -> u32.
//! - `segments`: segment id (26-char ULID) -> [`SegmentMeta`].
//! - `leases`: lease id -> [`LeaseRecord`]: a promise that the listed segments stay readable until `expires_at_ms`.
//! - `intents`: output segment id -> [`RewriteIntent`]: a rewrite whose output may exist on disk but is not
//!   committed yet.
//! - `moves`: `tier:path` of a new copy -> [`MoveIntent`]: a move whose new copy may exist but is not committed.
//!
//! Readers inside the process [`Catalog::pin`] the snapshot they read; garbage collection never deletes a segment
//! retired at or after the oldest pinned generation.

mod snapshot;
#[cfg(test)]
mod tests;

/// Opens a catalog that this process just closed. sled's flusher thread may hold a dropped database (and its file
/// lock) for a moment after `drop`; a new process never meets this, a test reopening in-process does.
#[cfg(test)]
pub(crate) fn open_retrying(dir: &Path) -> Catalog {
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

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

pub use snapshot::CatalogSnapshot;

use crate::error::{Result, StoreError};
use crate::layout::SegmentId;

/// 1: one `tier` + `location` per segment. 2: `locations` (a copy per tier) and `dropped` copies.
const SCHEMA_VERSION: u32 = 2;
const KEY_GENERATION: &[u8] = b"generation";
const KEY_SCHEMA: &[u8] = b"schema_version";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentState {
    /// Being appended to by the hot writer; `bytes`/`rows` grow with each committed group.
    Open,
    /// Immutable.
    Sealed,
    /// Replaced by the outputs of a committed rewrite: invisible to new lookups, still readable by anyone holding a
    /// lease or an older snapshot, deleted by garbage collection after leases and the grace period.
    Retired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The local hot directory (`DATA_DIR/hot`).
    Hot,
    /// The object store (`cold.url`).
    Cold,
}

impl Tier {
    pub fn label(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Cold => "cold",
        }
    }
}

/// Where a segment's live copies are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    Hot,
    Cold,
    /// A copy on each tier.
    Both,
}

impl Placement {
    pub fn label(self) -> &'static str {
        match self {
            Placement::Hot => "hot",
            Placement::Cold => "cold",
            Placement::Both => "both",
        }
    }
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// One stored copy of a segment's bytes. Every copy of a segment holds the same bytes (`bytes`, `checksum`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Location {
    pub tier: Tier,
    /// Hot: a path relative to the data directory. Cold: an object key relative to the cold tier's prefix. Never
    /// reused: every write of a copy gets a fresh path or key.
    pub path: String,
}

impl Location {
    pub fn hot(path: impl Into<String>) -> Self {
        Self { tier: Tier::Hot, path: path.into() }
    }

    pub fn cold(key: impl Into<String>) -> Self {
        Self { tier: Tier::Cold, path: key.into() }
    }
}

/// A copy taken out of service by a committed move: no new reader is sent to it, readers that already hold it may
/// finish; garbage collection deletes it after leases and the grace period, like a retired segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedLocation {
    #[serde(flatten)]
    pub location: Location,
    pub at_ms: i64,
    /// The generation of the commit that dropped it.
    pub generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The hot row format of `tierd_codecs::rows`.
    Rows,
    /// Columnar: plain Parquet (`tierd_codecs::columnar`).
    Parquet,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Rows => "application/vnd.tierd.rows",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// File name extension of a segment in this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Rows => "rows",
            Format::Parquet => "parquet",
        }
    }
}

/// The compression of a segment's data, written as `lz4`, `zstd-<level>` or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    None,
    Lz4,
    Zstd(u8),
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Codec::None => f.write_str("none"),
            Codec::Lz4 => f.write_str("lz4"),
            Codec::Zstd(level) => write!(f, "zstd-{level}"),
        }
    }
}

impl std::str::FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "none" => Ok(Codec::None),
            "lz4" => Ok(Codec::Lz4),
            other => match other.strip_prefix("zstd-").map(str::parse::<u8>) {
                Some(Ok(level)) if (1..=22).contains(&level) => Ok(Codec::Zstd(level)),
                _ => Err(format!("unknown codec {other:?}; expected none, lz4 or zstd-1 .. zstd-22")),
            },
        }
    }
}

impl Serialize for Codec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Codec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Everything the catalog knows about one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentMeta {
    pub id: SegmentId,
    pub project: String,
    /// UTC day of the events' time (days since 1970-01-01); every event of the segment falls in it.
    pub day: i32,
    pub state: SegmentState,
    pub format: Format,
    pub codec: Codec,
    /// Where the segment's bytes are served from: one copy per tier at most, at least one copy while the segment
    /// is not retired. Hot first when both exist.
    pub locations: Vec<Location>,
    /// Copies taken out of service by moves, waiting for garbage collection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<DroppedLocation>,
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    pub rows: u64,
    /// Committed length of the stored object: every byte up to here is durable and acknowledged.
    pub bytes: u64,
    /// crc32c of the stored bytes `[0, bytes)`.
    pub checksum: u32,
    /// Ingest sequence range of the rows.
    pub min_seq: u64,
    pub max_seq: u64,
    pub created_at_ms: i64,
    #[serde(default)]
    pub sealed_at_ms: Option<i64>,
    /// Catalog generation of the commit that created this segment (set by [`Catalog::commit`]).
    #[serde(default)]
    pub created_generation: u64,
    /// Catalog generation of the last commit that changed it (set by [`Catalog::commit`]).
    #[serde(default)]
    pub updated_generation: u64,
    /// For a retired segment: when and by which commit it was replaced, and by what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<Retirement>,
    /// Checksums of the stored bytes block by block, so that a ranged read of whole blocks (cold reads) is
    /// verified without reading the whole object. Recorded when the segment gets its cold copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<BlockChecksums>,
    /// What the segment is for: events queries read, or copies a dedup removed.
    #[serde(default, skip_serializing_if = "Role::is_data")]
    pub role: Role,
}

/// What a segment holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Role {
    /// Events that queries read.
    #[default]
    Data,
    /// The copies that the dedup of the rewrite producing segment `of` removed, kept so that a dedup that turns out
    /// wrong (a client reusing `$insert_id` for different events, say) can be inspected and undone: its events can
    /// be read back with `GET /v1/segments/{id}?format=ndjson`. Never returned by lookups nor rewritten by passes;
    /// garbage collection retires it at `keep_until_ms` and deletes it after the grace period like any retired
    /// segment.
    Duplicates { of: SegmentId, keep_until_ms: i64 },
}

impl Role {
    pub fn is_data(&self) -> bool {
        matches!(self, Role::Data)
    }
}

/// crc32c of each `block_size`-byte block of a segment's stored bytes (the last block may be shorter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockChecksums {
    pub block_size: u64,
    pub crcs: Vec<u32>,
}

impl BlockChecksums {
    /// Block size of cold reads and of the cold cache: 1 MiB, large enough that a block is one cheap ranged GET
    /// (S3 charges per request; first-byte latency dominates below about 1 MiB), small enough that a query needing
    /// a few columns does not fetch the whole object. The catalog carries 4 bytes per block.
    pub const DEFAULT_BLOCK_SIZE: u64 = 1 << 20;

    pub fn compute(bytes: &[u8], block_size: u64) -> Self {
        assert!(block_size > 0, "block size must be positive");
        let crcs = bytes.chunks(block_size as usize).map(crc32c::crc32c).collect();
        Self { block_size, crcs }
    }

    /// The byte range of block `i` in an object of `len` bytes.
    pub fn block_range(&self, i: usize, len: u64) -> std::ops::Range<u64> {
        let start = i as u64 * self.block_size;
        start..(start + self.block_size).min(len)
    }
}

/// How a segment left service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retirement {
    pub at_ms: i64,
    /// The generation of the commit that retired it: readers of older snapshots may still read it.
    pub generation: u64,
    pub replaced_by: Vec<SegmentId>,
}

impl SegmentMeta {
    /// Whether the segment may hold events in `[from_ms, to_ms)`.
    pub fn overlaps(&self, from_ms: i64, to_ms: i64) -> bool {
        self.rows > 0 && self.min_time_ms < to_ms && self.max_time_ms >= from_ms
    }

    /// The record as the pure planners of `policies` see it.
    pub fn planner_stats(&self) -> tierd_policies::SegmentStats {
        use tierd_policies::{SegmentFormat, SegmentState as P};
        tierd_policies::SegmentStats {
            id: self.id.to_string(),
            project: self.project.clone(),
            day: self.day,
            state: match self.state {
                SegmentState::Open => P::Open,
                SegmentState::Sealed => P::Sealed,
                SegmentState::Retired => P::Retired,
            },
            format: match self.format {
                Format::Rows => SegmentFormat::Rows,
                Format::Parquet => SegmentFormat::Columnar,
            },
            codec: self.codec.to_string(),
            rows: self.rows,
            bytes: self.bytes,
            created_at_ms: self.created_at_ms,
            max_time_ms: self.max_time_ms,
            placement: match self.placement() {
                Placement::Cold => tierd_policies::Placement::Cold,
                Placement::Both => tierd_policies::Placement::Both,
                Placement::Hot => tierd_policies::Placement::Hot,
            },
        }
    }

    /// The path or key of the live copy on `tier`.
    pub fn location_on(&self, tier: Tier) -> Option<&str> {
        self.locations.iter().find(|l| l.tier == tier).map(|l| l.path.as_str())
    }

    /// The hot copy's path, if the segment has one.
    pub fn hot_path(&self) -> Option<&str> {
        self.location_on(Tier::Hot)
    }

    /// The cold copy's key, if the segment has one.
    pub fn cold_key(&self) -> Option<&str> {
        self.location_on(Tier::Cold)
    }

    /// Where the live copies are.
    pub fn placement(&self) -> Placement {
        match (self.hot_path().is_some(), self.cold_key().is_some()) {
            (true, true) => Placement::Both,
            (false, true) => Placement::Cold,
            _ => Placement::Hot,
        }
    }

    /// Every copy that may still exist: live and dropped ones.
    pub fn all_locations(&self) -> impl Iterator<Item = &Location> {
        self.locations.iter().chain(self.dropped.iter().map(|d| &d.location))
    }

    /// Whether it is in service (retired segments are only for readers that already hold them).
    pub fn is_live(&self) -> bool {
        self.state != SegmentState::Retired
    }

    /// Whether new lookups return it: a live segment of events (not a side segment of removed duplicates).
    pub fn is_queryable(&self) -> bool {
        self.is_live() && self.role.is_data()
    }
}

/// One change in a catalog commit.
// Changes live in short vectors for one commit; boxing the records would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum CatalogChange {
    /// Insert or replace a segment's record.
    Put(SegmentMeta),
    Remove(SegmentId),
    /// Drop the rewrite intent for this output (the rewrite committed or was rolled back).
    ClearIntent(SegmentId),
    /// Drop the move intent for this new copy (the move committed or was rolled back).
    ClearMoveIntent(Location),
    /// A precondition: the commit fails, changing nothing, unless the segment is still at this generation (its
    /// `updated_generation`). Work that read a record, did slow I/O and now writes the record back uses it so that
    /// a concurrent commit (a rewrite retiring the segment, another move) is never overwritten.
    Expect {
        id: SegmentId,
        updated_generation: u64,
    },
    /// A precondition: the commit fails, changing nothing, if the catalog has a record of this segment (a restore
    /// from the trash must not overwrite one).
    ExpectAbsent(SegmentId),
}

/// A move in progress, recorded durably *before* the new copy is written, so that recovery can tell tierd's own
/// uncommitted copies (deleted) from data it does not know (quarantined). The commit that records the copy in the
/// segment's locations clears the intent in the same transaction: an intent still present means "not committed".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveIntent {
    pub segment: SegmentId,
    /// The new copy being written.
    pub location: Location,
    pub started_at_ms: i64,
}

impl MoveIntent {
    fn key(location: &Location) -> String {
        format!("{}:{}", location.tier.label(), location.path)
    }
}

/// A rewrite in progress, recorded durably *before* its output is written, so that recovery can tell tierd's own
/// uncommitted outputs (deleted) from files it does not know (quarantined).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewriteIntent {
    pub output: SegmentId,
    /// Where the output is being written, relative to the data directory.
    pub location: String,
    pub inputs: Vec<SegmentId>,
    pub started_at_ms: i64,
}

/// A lease as handed to readers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: String,
    pub expires_at_ms: i64,
}

/// A lease as stored: the promise and what it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub expires_at_ms: i64,
    pub generation: u64,
    pub segments: Vec<SegmentId>,
}

pub struct Catalog {
    db: sled::Db,
    meta: sled::Tree,
    segments: sled::Tree,
    leases: sled::Tree,
    intents: sled::Tree,
    moves: sled::Tree,
    write_lock: Mutex<()>,
    snapshot: ArcSwap<CatalogSnapshot>,
    pins: Arc<Mutex<std::collections::BTreeMap<u64, usize>>>,
}

/// A snapshot held by an in-process reader; while it lives, segments retired after its generation are not deleted.
#[derive(Debug)]
pub struct Pinned {
    snapshot: Arc<CatalogSnapshot>,
    pins: Arc<Mutex<std::collections::BTreeMap<u64, usize>>>,
}

impl std::ops::Deref for Pinned {
    type Target = CatalogSnapshot;
    fn deref(&self) -> &CatalogSnapshot {
        &self.snapshot
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let mut pins = self.pins.lock();
        let g = self.snapshot.generation();
        if let Some(n) = pins.get_mut(&g) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&g);
            }
        }
    }
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("generation", &self.snapshot().generation()).finish()
    }
}

fn decode_err(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Catalog(format!("cannot decode {what}: {e}"))
}

/// Schema 1 -> 2, in one transaction: `{"tier": T, "location": P}` becomes `{"locations": [{"tier": T, "path": P}]}`.
fn migrate_v1(db: &sled::Db, meta: &sled::Tree, segments: &sled::Tree) -> Result<()> {
    let mut rewritten = Vec::new();
    for kv in segments.iter() {
        let (k, v) = kv?;
        let mut record: serde_json::Value = serde_json::from_slice(&v).map_err(|e| decode_err("v1 segment", e))?;
        let obj = record.as_object_mut().ok_or_else(|| decode_err("v1 segment", "not an object"))?;
        let (Some(tier), Some(path)) = (obj.remove("tier"), obj.remove("location")) else {
            return Err(decode_err("v1 segment", format!("{} has no tier and location", String::from_utf8_lossy(&k))));
        };
        obj.insert("locations".into(), serde_json::json!([{"tier": tier, "path": path}]));
        serde_json::from_value::<SegmentMeta>(record.clone()).map_err(|e| decode_err("migrated segment", e))?;
        rewritten.push((k, serde_json::to_vec(&record).map_err(|e| StoreError::Catalog(e.to_string()))?));
    }
    (meta, segments)
        .transaction(|(meta, segs)| {
            for (k, v) in &rewritten {
                segs.insert(k.as_ref(), v.as_slice())?;
            }
            meta.insert(KEY_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
            Ok::<_, ConflictableTransactionError<()>>(())
        })
        .map_err(|e: TransactionError<()>| StoreError::Catalog(format!("schema 1 -> 2 migration: {e:?}")))?;
    db.flush()?;
    tracing::info!(segments = rewritten.len(), "catalog migrated from schema 1 to 2");
    Ok(())
}

impl Catalog {
    /// Opens (or creates) the catalog in `dir` and loads it into memory; a catalog of an older schema is migrated.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new().path(dir).open()?;
        let meta = db.open_tree("meta")?;
        let segments = db.open_tree("segments")?;
        let leases = db.open_tree("leases")?;
        let intents = db.open_tree("intents")?;
        let moves = db.open_tree("moves")?;
        match meta.get(KEY_SCHEMA)? {
            None => {
                meta.insert(KEY_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Some(v) => {
                let mut v = u32::from_be_bytes(v.as_ref().try_into().map_err(|e| decode_err("schema_version", e))?);
                if v == 1 {
                    migrate_v1(&db, &meta, &segments)?;
                    v = 2;
                }
                if v != SCHEMA_VERSION {
                    return Err(StoreError::Catalog(format!(
                        "catalog schema version {v} is not supported by this tierd (expects {SCHEMA_VERSION})"
                    )));
                }
            }
        }
        let generation = match meta.get(KEY_GENERATION)? {
            None => 0,
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(|e| decode_err("generation", e))?),
        };
        let mut all = Vec::new();
        for kv in segments.iter() {
            let (_, v) = kv?;
            let m: SegmentMeta = serde_json::from_slice(&v).map_err(|e| decode_err("segment record", e))?;
            all.push(m);
        }
        let snapshot = CatalogSnapshot::build(generation, all);
        Ok(Self {
            db,
            meta,
            segments,
            leases,
            intents,
            moves,
            write_lock: Mutex::new(()),
            snapshot: ArcSwap::from_pointee(snapshot),
            pins: Arc::default(),
        })
    }

    /// The current snapshot: one generation, whole.
    pub fn snapshot(&self) -> Arc<CatalogSnapshot> {
        self.snapshot.load_full()
    }

    /// The current snapshot, pinned for the life of the returned value (see [`Pinned`]).
    pub fn pin(&self) -> Pinned {
        let mut pins = self.pins.lock();
        let snapshot = self.snapshot.load_full();
        *pins.entry(snapshot.generation()).or_default() += 1;
        Pinned { snapshot, pins: self.pins.clone() }
    }

    /// The oldest generation an in-process reader still holds.
    pub fn oldest_pinned_generation(&self) -> Option<u64> {
        self.pins.lock().keys().next().copied()
    }

    /// Records rewrite intents durably (one fsync) before their outputs are written.
    pub fn record_intents(&self, intents: &[RewriteIntent]) -> Result<()> {
        for intent in intents {
            let v = serde_json::to_vec(intent).map_err(|e| StoreError::Catalog(e.to_string()))?;
            self.intents.insert(intent.output.to_string().as_bytes(), v)?;
        }
        self.db.flush()?;
        Ok(())
    }

    /// Records a move intent durably (fsync) before the new copy is written.
    pub fn record_move_intent(&self, intent: &MoveIntent) -> Result<()> {
        let v = serde_json::to_vec(intent).map_err(|e| StoreError::Catalog(e.to_string()))?;
        self.moves.insert(MoveIntent::key(&intent.location).as_bytes(), v)?;
        self.db.flush()?;
        Ok(())
    }

    /// Every move intent not yet committed or rolled back.
    pub fn move_intents(&self) -> Result<Vec<MoveIntent>> {
        let mut out = Vec::new();
        for kv in self.moves.iter() {
            let (_, v) = kv?;
            out.push(serde_json::from_slice(&v).map_err(|e| decode_err("move intent", e))?);
        }
        Ok(out)
    }

    /// Every rewrite intent not yet committed or rolled back.
    pub fn intents(&self) -> Result<Vec<RewriteIntent>> {
        let mut out = Vec::new();
        for kv in self.intents.iter() {
            let (_, v) = kv?;
            out.push(serde_json::from_slice(&v).map_err(|e| decode_err("rewrite intent", e))?);
        }
        Ok(out)
    }

    /// Applies `changes` atomically (one sled transaction), bumps the generation, makes it durable (fsync) and
    /// publishes the new snapshot. Returns the new generation. `created_generation`/`updated_generation` of put
    /// records are filled in here.
    pub fn commit(&self, changes: Vec<CatalogChange>) -> Result<u64> {
        let started = std::time::Instant::now();
        let _guard = self.write_lock.lock();
        let current = self.snapshot.load_full();
        for c in &changes {
            if let CatalogChange::ExpectAbsent(id) = c {
                if let Some(m) = current.get(id) {
                    return Err(StoreError::StalePlan(format!(
                        "segment {id} is in the catalog (generation {})",
                        m.updated_generation
                    )));
                }
            }
            if let CatalogChange::Expect { id, updated_generation } = c {
                let found = current.get(id).map(|m| m.updated_generation);
                if found != Some(*updated_generation) {
                    return Err(StoreError::StalePlan(format!(
                        "segment {id} changed since it was read (generation {updated_generation}, now {})",
                        found.map_or("removed".to_string(), |g| g.to_string())
                    )));
                }
            }
        }
        let generation = current.generation() + 1;
        let mut changes = changes;
        for c in &mut changes {
            if let CatalogChange::Put(m) = c {
                m.created_generation = match current.get(&m.id) {
                    Some(old) => old.created_generation,
                    None => generation,
                };
                m.updated_generation = generation;
                if let Some(r) = &mut m.retired {
                    if r.generation == 0 {
                        r.generation = generation;
                    }
                }
                for d in m.dropped.iter_mut().filter(|d| d.generation == 0) {
                    d.generation = generation;
                }
            }
        }
        let mut encoded = Vec::with_capacity(changes.len());
        for c in &changes {
            encoded.push(match c {
                CatalogChange::Put(m) => {
                    (m.id.to_string(), Some(serde_json::to_vec(m).map_err(|e| StoreError::Catalog(e.to_string()))?))
                }
                CatalogChange::Remove(id) => (id.to_string(), None),
                CatalogChange::ClearIntent(_)
                | CatalogChange::ClearMoveIntent(_)
                | CatalogChange::Expect { .. }
                | CatalogChange::ExpectAbsent(_) => continue,
            });
        }
        let cleared: Vec<String> = changes
            .iter()
            .filter_map(|c| match c {
                CatalogChange::ClearIntent(id) => Some(id.to_string()),
                _ => None,
            })
            .collect();
        let cleared_moves: Vec<String> = changes
            .iter()
            .filter_map(|c| match c {
                CatalogChange::ClearMoveIntent(l) => Some(MoveIntent::key(l)),
                _ => None,
            })
            .collect();
        (&self.meta, &self.segments, &self.intents, &self.moves)
            .transaction(|(meta, segments, intents, moves)| {
                for (key, value) in &encoded {
                    match value {
                        Some(v) => segments.insert(key.as_bytes(), v.as_slice())?,
                        None => segments.remove(key.as_bytes())?,
                    };
                }
                for key in &cleared {
                    intents.remove(key.as_bytes())?;
                }
                for key in &cleared_moves {
                    moves.remove(key.as_bytes())?;
                }
                meta.insert(KEY_GENERATION, &generation.to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| {
                StoreError::Catalog(format!("commit of generation {generation}: {e:?}"))
            })?;
        self.db.flush()?;
        let next = current.apply(generation, changes);
        self.snapshot.store(Arc::new(next));
        metrics::counter!("tierd_catalog_commits_total").increment(1);
        metrics::gauge!("tierd_catalog_generation").set(generation as f64);
        metrics::histogram!("tierd_catalog_commit_seconds").record(started.elapsed().as_secs_f64());
        Ok(generation)
    }

    /// Grants a lease over `segments` until `now_ms + ttl_ms`. Leases are written to sled without a flush of
    /// their own (sled flushes every 500 ms and every commit flushes): a crash can lose a lease granted in the
    /// last moments, so garbage collection after a restart must also wait one lease TTL (see ARCHITECTURE.md).
    pub fn grant_lease(&self, now_ms: i64, ttl_ms: i64, generation: u64, segments: Vec<SegmentId>) -> Result<Lease> {
        let id = SegmentId::generate(now_ms).to_string();
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        let record = LeaseRecord { expires_at_ms, generation, segments };
        let v = serde_json::to_vec(&record).map_err(|e| StoreError::Catalog(e.to_string()))?;
        self.leases.insert(id.as_bytes(), v)?;
        metrics::counter!("tierd_catalog_leases_granted_total").increment(1);
        Ok(Lease { id, expires_at_ms })
    }

    /// Every lease that has not expired at `now_ms`.
    pub fn live_leases(&self, now_ms: i64) -> Result<Vec<(String, LeaseRecord)>> {
        let mut out = Vec::new();
        for kv in self.leases.iter() {
            let (k, v) = kv?;
            let rec: LeaseRecord = serde_json::from_slice(&v).map_err(|e| decode_err("lease", e))?;
            if rec.expires_at_ms > now_ms {
                out.push((String::from_utf8_lossy(&k).into_owned(), rec));
            }
        }
        Ok(out)
    }

    /// Removes leases that expired before `now_ms`; returns how many.
    pub fn prune_leases(&self, now_ms: i64) -> Result<usize> {
        let mut n = 0;
        for kv in self.leases.iter() {
            let (k, v) = kv?;
            let expired = serde_json::from_slice::<LeaseRecord>(&v).map(|r| r.expires_at_ms <= now_ms).unwrap_or(true);
            if expired {
                self.leases.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}
