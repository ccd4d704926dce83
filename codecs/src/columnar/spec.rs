//! How a columnar segment is compressed and laid out: [`CodecSpec`] and its [`Compression`].
//!
//! The spec is configuration (the daemon reads it from its config file) and it is recorded in every segment, so both
//! its text form and its serde form are part of the format. A spec is validated before anything is written with it:
//! an invalid one never reaches the Parquet writer (which would panic on some of them, e.g. zero rows per group).

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

/// The zstd levels a spec accepts: zstd's own range (1 fastest .. 22 smallest).
pub const ZSTD_LEVELS: RangeInclusive<i32> = 1..=22;
/// The level of a bare `zstd`.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// The most rows a spec may put in one row group. The writer holds a whole row group in memory before it writes it
/// out, and a reader holds a row group's pages of the columns it reads, so this bounds both; it is also the Parquet
/// writer's own default maximum.
pub const MAX_ROW_GROUP_ROWS: usize = 1 << 20;

/// The page compression of a columnar segment (one codec for every column).
///
/// Text form (`Display` / `FromStr`, and serde): `none`, `lz4`, `zstd-<level>`; `zstd` (level
/// [`DEFAULT_ZSTD_LEVEL`]) and `zstd(<level>)` are accepted too, in any letter case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Compression {
    None,
    /// Parquet `LZ4_RAW` (plain LZ4 blocks; the deprecated Hadoop-framed `LZ4` codec is never written).
    Lz4,
    /// zstd at a level in [`ZSTD_LEVELS`].
    Zstd(i32),
}

/// The settings a columnar segment is written with.
///
/// Serde form: `{"compression": "lz4", "row_group_rows": 65536, "dictionary": true}`; a missing field takes its
/// default, an unknown field or an invalid value is an error naming it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "CodecSpecFields")]
pub struct CodecSpec {
    pub compression: Compression,
    /// Rows per row group (the last one may hold fewer), 1..=[`MAX_ROW_GROUP_ROWS`]. Row groups are the unit that
    /// a scan skips by statistics.
    pub row_group_rows: usize,
    /// Dictionary-encode the columns where repeated values are expected (event name, `distinct_id`, shredded
    /// properties, `_props`); never the time, sequence and `$insert_id` columns, whose values are (nearly) unique.
    pub dictionary: bool,
    /// Most shredded property columns (`p.<key>`) a segment gets; the keys past it (the least common first, ties
    /// by key) stay in `_props`. Bounds the width of a file, and so the footer, the page index and the writer's
    /// builders, whatever the events carry. 0 = no property column at all.
    pub max_property_columns: usize,
}

/// The default of [`CodecSpec::max_property_columns`]: one more than the 255 properties an event may carry
/// (Mixpanel's limit, `ingest.max_properties_per_event`), so a segment of events of one shape shreds every key.
pub const DEFAULT_MAX_PROPERTY_COLUMNS: usize = 256;

/// Why a [`CodecSpec`] or [`Compression`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecSpecError {
    #[error("unknown compression {given:?}: use none, lz4, zstd, zstd-<level> or zstd(<level>)")]
    UnknownCompression { given: String },
    #[error("zstd level in {given:?} is not a whole number: use zstd-<level> with a level from 1 to 22")]
    BadZstdLevel { given: String },
    #[error("zstd level {level} is out of range: use a level from 1 (fastest) to 22 (smallest)")]
    ZstdLevelOutOfRange { level: i32 },
    #[error("row_group_rows is {got}: use a number of rows from 1 to {max}")]
    RowGroupRows { got: usize, max: usize },
}

impl Compression {
    /// Checks the zstd level; `None` and `Lz4` are always valid.
    pub fn validate(self) -> Result<Self, CodecSpecError> {
        match self {
            Compression::Zstd(level) if !ZSTD_LEVELS.contains(&level) => {
                Err(CodecSpecError::ZstdLevelOutOfRange { level })
            }
            valid => Ok(valid),
        }
    }

    /// The Parquet codec; the compression must be valid.
    pub(crate) fn to_parquet(self) -> parquet::basic::Compression {
        use parquet::basic::{Compression as Codec, ZstdLevel};
        match self {
            Compression::None => Codec::UNCOMPRESSED,
            Compression::Lz4 => Codec::LZ4_RAW,
            Compression::Zstd(level) => {
                Codec::ZSTD(ZstdLevel::try_new(level).expect("the level was validated against ZSTD_LEVELS"))
            }
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::None => f.write_str("none"),
            Compression::Lz4 => f.write_str("lz4"),
            Compression::Zstd(level) => write!(f, "zstd-{level}"),
        }
    }
}

impl FromStr for Compression {
    type Err = CodecSpecError;

    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let lower = given.to_ascii_lowercase();
        let level = match lower.as_str() {
            "none" => return Ok(Compression::None),
            "lz4" => return Ok(Compression::Lz4),
            "zstd" => return Ok(Compression::Zstd(DEFAULT_ZSTD_LEVEL)),
            other => match other.strip_prefix("zstd") {
                Some(rest) => rest
                    .strip_prefix('-')
                    .or_else(|| rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')))
                    .ok_or_else(|| CodecSpecError::UnknownCompression { given: given.to_owned() })?,
                None => return Err(CodecSpecError::UnknownCompression { given: given.to_owned() }),
            },
        };
        // Digits only: `i32::from_str` would also take a sign (`zstd-+3`), which is not a spelling anyone means.
        if level.is_empty() || !level.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CodecSpecError::BadZstdLevel { given: given.to_owned() });
        }
        // All digits, so the only failure is overflow, which is out of range in any case.
        let level = level.parse::<i32>().unwrap_or(i32::MAX);
        Compression::Zstd(level).validate()
    }
}

impl From<Compression> for String {
    fn from(compression: Compression) -> String {
        compression.to_string()
    }
}

impl TryFrom<String> for Compression {
    type Error = CodecSpecError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl CodecSpec {
    /// Checks every field; [`crate::columnar::encode`] and [`crate::columnar::recompress`] call this first.
    pub fn validate(&self) -> Result<(), CodecSpecError> {
        self.compression.validate()?;
        if !(1..=MAX_ROW_GROUP_ROWS).contains(&self.row_group_rows) {
            return Err(CodecSpecError::RowGroupRows { got: self.row_group_rows, max: MAX_ROW_GROUP_ROWS });
        }
        Ok(())
    }
}

/// The default spec: LZ4, 65,536 rows per row group, dictionaries on.
///
/// Measured with `cargo run -p tierd-codecs --release --example columnar_bench -- --runs 7` (400,000 generated
/// Mixpanel events of one day, sorted by (event, time); see [`crate::columnar::sort_permutation`] for the data and
/// the scans). Rows decoded do not depend on the row group size (page statistics prune inside a group), so the
/// size trades bytes and the fixed cost of opening a segment (footer and page index, per group) against memory
/// and parallelism:
///
/// | rows per group | groups | bytes/event | open | 1 h, one event |
/// |---|---|---|---|---|
/// | 8,192 | 49 | 63.4 | 0.59 ms | 1.24 ms |
/// | 16,384 | 25 | 62.4 | 0.36 ms | 1.02 ms |
/// | 32,768 | 13 | 61.4 | 0.26 ms | 0.98 ms |
/// | **65,536** | 7 | 60.7 | 0.20 ms | 0.90 ms |
/// | 131,072 | 4 | 59.6 | 0.17 ms | 0.86 ms |
/// | 262,144 | 2 | 59.4 | 0.14 ms | 0.98 ms |
/// | 1,048,576 | 1 | 60.2 | 0.13 ms | 1.04 ms |
///
/// - 64K rows: below it every group repeats its column chunk metadata, statistics and dictionaries (+4.5% bytes
///   at 8K) and opening costs more; above it the file is at most 2% smaller and scans are no faster, while the
///   writer buffers a bigger group and readers that parallelise by row group (DuckDB) get fewer units of work
///   from a segment (a sealed hot segment holds a few hundred thousand events).
/// - LZ4 (60.7 bytes/event): fast to scan and write. zstd-1 is 38% smaller (37.4) and 1.6x slower to scan;
///   zstd-19 is 42% smaller (35.3) and several times slower to write (36 vs 14 µs/event in that run). The zstd
///   levels belong to colder tiers, reached with [`crate::columnar::recompress`]. (No compression is 42% bigger
///   and barely faster to scan.)
/// - Dictionaries on: off costs 60% more bytes with LZ4 (97.4) and is no faster.
impl Default for CodecSpec {
    fn default() -> Self {
        Self {
            compression: Compression::Lz4,
            row_group_rows: 65_536,
            dictionary: true,
            max_property_columns: DEFAULT_MAX_PROPERTY_COLUMNS,
        }
    }
}

/// The serde form of [`CodecSpec`], validated on the way in.
#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CodecSpecFields {
    compression: Compression,
    row_group_rows: usize,
    dictionary: bool,
    max_property_columns: usize,
}

impl Default for CodecSpecFields {
    fn default() -> Self {
        let CodecSpec { compression, row_group_rows, dictionary, max_property_columns } = CodecSpec::default();
        Self { compression, row_group_rows, dictionary, max_property_columns }
    }
}

impl TryFrom<CodecSpecFields> for CodecSpec {
    type Error = CodecSpecError;

    fn try_from(fields: CodecSpecFields) -> Result<Self, Self::Error> {
        let CodecSpecFields { compression, row_group_rows, dictionary, max_property_columns } = fields;
        let spec = CodecSpec { compression, row_group_rows, dictionary, max_property_columns };
        spec.validate()?;
        Ok(spec)
    }
}
