//! The catalog's record of a segment: what it holds, where its copies are, in what state and format.
//!
//! Records are stored as JSON (one per segment, in the `segments` tree) so an operator can read them with any sled
//! tool; every field added after the first schema has a serde default.

use serde::{Deserialize, Serialize};

use crate::layout::{Location, SegmentId, Tier};

crate::labelled_enum! {
    /// A segment's life-cycle state (its label is also the metrics' `state` label).
    #[derive(Hash)]
    pub enum SegmentState {
        /// Being appended to by the hot writer; `bytes`/`rows` grow with each committed group.
        Open = "open",
        /// Immutable.
        Sealed = "sealed",
        /// Replaced by the outputs of a committed rewrite: invisible to new lookups, still readable by anyone holding
        /// a lease or an older snapshot, deleted by garbage collection after leases and the grace period.
        Retired = "retired",
    }
}

crate::labelled_enum! {
    /// Where a segment's live copies are.
    #[derive(Hash)]
    pub enum Placement {
        Hot = "hot",
        Cold = "cold",
        /// A copy on each tier.
        Both = "both",
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
    /// Catalog generation of the commit that created this segment (set by [`Catalog::commit`](crate::Catalog::commit)).
    #[serde(default)]
    pub created_generation: u64,
    /// Catalog generation of the last commit that changed it (set by [`Catalog::commit`](crate::Catalog::commit)).
    #[serde(default)]
    pub updated_generation: u64,
    /// For a retired segment: when and by which commit it was replaced, and by what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<Retirement>,
    /// Checksums of the stored bytes block by block, so that a ranged read of whole blocks (cold reads) is
    /// verified without reading the whole object. Recorded when the segment gets its cold copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<BlockChecksums>,
    /// When the last committed move changed where the segment's copies are (`None`: never moved; it has been where
    /// it is since `created_at_ms`). Residency rules count from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed_at_ms: Option<i64>,
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
    /// Its copies may hold rows a user deletion removes (set by the `deletions` pass's filtered rewrite, and by the
    /// pass on segments retired before it ran): gc erases them with `deletions.trash_retention_secs` instead of the
    /// trash's usual stay. Absent in records written before it existed (false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erase: bool,
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
            placed_at_ms: self.placed_at_ms.unwrap_or(self.created_at_ms),
            heat: 0.0,
            heat_bytes: 0.0,
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
