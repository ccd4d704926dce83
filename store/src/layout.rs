//! Names and places: segment ids, UTC days, project names and where files live under the data directory.
//!
//! Every path tierd touches is built here from validated parts (a ULID and a project name of `[A-Za-z0-9_-]`), so no
//! request can name a path outside the data directory.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

const MS_PER_DAY: i64 = 86_400_000;

/// A segment's identity: a ULID (time-ordered, 26 Crockford base32 characters). Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub ulid::Ulid);

impl SegmentId {
    /// A fresh id whose time part is `now_ms`.
    pub fn generate(now_ms: i64) -> Self {
        let ms = u64::try_from(now_ms).unwrap_or(0);
        SegmentId(ulid::Ulid::from_parts(ms, rand_u128()))
    }
}

/// 80 random bits for ULIDs, from the std hasher's per-process random keys plus a counter (no rand dependency).
pub(crate) fn rand_u128() -> u128 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut a = RandomState::new().build_hasher();
    a.write_u64(n);
    let mut b = RandomState::new().build_hasher();
    b.write_u64(!n);
    ((a.finish() as u128) << 64) | b.finish() as u128
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Parse errors name the rule that was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid segment id {input:?}: expected 26 characters of Crockford base32 (a ULID)")]
pub struct InvalidSegmentId {
    pub input: String,
}

impl FromStr for SegmentId {
    type Err = InvalidSegmentId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || InvalidSegmentId { input: s.chars().take(64).collect() };
        // Only the canonical uppercase form is accepted, so one segment has exactly one spelling.
        if s.len() != 26 || !s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
            return Err(err());
        }
        let u = ulid::Ulid::from_string(s).map_err(|_| err())?;
        if u.to_string() != s {
            return Err(err());
        }
        Ok(SegmentId(u))
    }
}

impl Serialize for SegmentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SegmentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// UTC day (days since 1970-01-01) of a time in ms, saturating at the ends of `i32` (so that open-ended windows such
/// as `[i64::MIN, i64::MAX)` map to all days).
pub fn day_of_ms(ms: i64) -> i32 {
    ms.div_euclid(MS_PER_DAY).clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// First ms of a UTC day.
pub fn day_start_ms(day: i32) -> i64 {
    day as i64 * MS_PER_DAY
}

/// `YYYY-MM-DD` of a UTC day.
pub fn format_day(day: i32) -> String {
    chrono::DateTime::from_timestamp_millis(day_start_ms(day))
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("day{day}"))
}

crate::labelled_enum! {
    /// Which tier a copy is on.
    #[derive(Hash, PartialOrd, Ord)]
    pub enum Tier {
        /// The local hot directory (`DATA_DIR/hot`).
        Hot = "hot",
        /// The object store (`cold.url`).
        Cold = "cold",
    }
}

/// One stored copy of a segment's bytes. Every copy of a segment holds the same bytes (`bytes`, `checksum`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

/// Project names are `[A-Za-z0-9_-]{1,64}`: safe as a path component and a metric label.
pub fn validate_project(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("project name must be 1 to 64 characters, got {}", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        return Err(format!("project name {name:?} has character {c:?}; allowed are A-Z a-z 0-9 _ -"));
    }
    Ok(())
}

/// Where cold segment copies live under the cold tier's prefix; everything else there is not reconciled.
pub const COLD_SEGMENTS_PREFIX: &str = "segments";
/// Where deleted copies wait for their final deletion, in both tiers (`DATA_DIR/trash`, `trash/` in the bucket).
pub const TRASH_PREFIX: &str = "trash";

/// Where things live under the data directory, and the names of every file and object tierd writes.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn hot_dir(&self) -> PathBuf {
        self.root.join("hot")
    }

    pub fn catalog_dir(&self) -> PathBuf {
        self.root.join("catalog")
    }

    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// The cold-bytes cache (`crate::cache`).
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Spill files of streaming rewrites (sorted runs; `crate::rewrite`): never in the catalog, removed after use
    /// and at every start.
    pub fn spill_dir(&self) -> PathBuf {
        self.root.join("spill")
    }

    /// The trash of the hot tier (`crate::gc`).
    pub fn trash_dir(&self) -> PathBuf {
        self.root.join(TRASH_PREFIX)
    }

    /// The catalog's `location` of a hot row segment, relative to the data directory.
    pub fn hot_location(project: &str, id: SegmentId) -> String {
        Self::hot_segment_location(project, id, "rows")
    }

    /// The location of a new segment `id` written on the hot disk (a row segment, a rewrite's output).
    pub fn hot_segment_location(project: &str, id: SegmentId, extension: &str) -> String {
        format!("hot/{project}/{id}.{extension}")
    }

    /// A fresh path for a hot copy of segment `id` written by a move (cold -> hot): the segment id and a new ULID,
    /// so that it never collides with an earlier copy of the same segment still waiting for garbage collection.
    pub fn hot_copy_location(project: &str, id: SegmentId, now_ms: i64, extension: &str) -> String {
        format!("hot/{project}/{id}.{}.{extension}", SegmentId::generate(now_ms))
    }

    /// A fresh object key for a cold copy of segment `id`: `segments/<project>/<day>/<id>.<nonce>.<extension>`, the
    /// nonce a new ULID, so no key is ever written twice (correctness never depends on the server honouring
    /// create-only puts).
    pub fn cold_key(project: &str, day: i32, id: SegmentId, now_ms: i64, extension: &str) -> String {
        let nonce = SegmentId::generate(now_ms);
        format!("{COLD_SEGMENTS_PREFIX}/{project}/{}/{id}.{nonce}.{extension}", format_day(day))
    }

    /// The trash batch of a gc run at `batch_ms`: `trash/<ms>` (a directory under the data directory, a prefix in
    /// the bucket).
    pub fn trash_batch(batch_ms: i64) -> String {
        Self::trash_entry(&batch_ms.to_string())
    }

    /// An entry `name` of the trash's top level (a batch directory, or anything else found there).
    pub fn trash_entry(name: &str) -> String {
        format!("{TRASH_PREFIX}/{name}")
    }

    /// Where the copy at `path` (a hot location or a cold key) waits in trash batch `batch_ms`.
    pub fn trash_path(batch_ms: i64, path: &str) -> String {
        format!("{TRASH_PREFIX}/{batch_ms}/{path}")
    }

    /// Where trash batch `batch_ms` keeps the catalog records of the segments it holds, relative to the data
    /// directory.
    pub fn trash_records(batch_ms: i64) -> String {
        format!("{TRASH_PREFIX}/{batch_ms}/records")
    }

    /// Where trash batch `batch_ms` keeps the catalog record of segment `id`, relative to the data directory.
    pub fn trash_record(batch_ms: i64, id: SegmentId) -> String {
        format!("{}/{id}.json", Self::trash_records(batch_ms))
    }

    /// The project a hot location (`hot/<project>/...`) or cold key (`segments/<project>/...`) belongs to, also
    /// when it waits in the trash (`trash/<ms>/...`).
    pub fn project_of(path: &str) -> Option<&str> {
        let path = match Self::trash_batch_of(path) {
            Some(_) => path.splitn(3, '/').nth(2)?,
            None => path,
        };
        let rest = path.strip_prefix("hot/").or_else(|| path.strip_prefix(&format!("{COLD_SEGMENTS_PREFIX}/")))?;
        rest.split_once('/').map(|(project, _)| project)
    }

    /// The batch time of a trash path or key `trash/<ms>/...`.
    pub fn trash_batch_of(path: &str) -> Option<i64> {
        path.strip_prefix(TRASH_PREFIX)?.strip_prefix('/')?.split('/').next()?.parse().ok()
    }

    /// Resolves a catalog location. Locations are only ever built by [`Layout::hot_location`], but a corrupt
    /// catalog must not lead outside the data directory either.
    pub fn resolve(&self, location: &str) -> Option<PathBuf> {
        let p = Path::new(location);
        let safe = p.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        safe.then(|| self.root.join(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_ids_round_trip_and_reject_tricks() {
        let id = SegmentId::generate(1_700_000_000_000);
        let s = id.to_string();
        assert_eq!(s.len(), 26);
        assert_eq!(s.parse::<SegmentId>().unwrap(), id);
        for bad in ["", "abc", "../../etc/passwd", &s.to_lowercase(), &format!("{s}A"), "..%2F..%2Fetc%2Fpasswd0000"] {
            assert!(bad.parse::<SegmentId>().is_err(), "{bad:?} accepted");
        }
        assert_ne!(SegmentId::generate(1), SegmentId::generate(1));
    }

    #[test]
    fn days_are_utc_and_floor_negative_times() {
        assert_eq!(day_of_ms(0), 0);
        assert_eq!(day_of_ms(86_399_999), 0);
        assert_eq!(day_of_ms(86_400_000), 1);
        assert_eq!(day_of_ms(-1), -1);
        assert_eq!(day_of_ms(i64::MAX), i32::MAX);
        assert_eq!(day_of_ms(i64::MIN), i32::MIN);
        assert_eq!(format_day(day_of_ms(1_767_225_600_000)), "2026-01-01");
    }

    #[test]
    fn project_names() {
        assert!(validate_project("default").is_ok());
        assert!(validate_project("A-b_9").is_ok());
        assert!(validate_project(&"x".repeat(64)).is_ok());
        assert!(validate_project(&"x".repeat(65)).is_err());
        assert!(validate_project("").is_err());
        assert!(validate_project("a/b").unwrap_err().contains("'/'"));
        assert!(validate_project("..").is_err());
    }

    #[test]
    fn paths_name_their_project() {
        let id = SegmentId::generate(1);
        let hot = Layout::hot_location("web", id);
        let cold = Layout::cold_key("app", 20_000, id, 2, "parquet");
        assert_eq!(Layout::project_of(&hot), Some("web"));
        assert_eq!(Layout::project_of(&cold), Some("app"));
        assert_eq!(Layout::project_of(&Layout::trash_path(7, &cold)), Some("app"));
        assert_eq!(Layout::project_of(&Layout::trash_path(7, &hot)), Some("web"));
        assert_eq!(Layout::project_of(&Layout::trash_batch(7)), None);
        assert_eq!(Layout::project_of("cache/ab/x"), None);
        assert_eq!(Layout::trash_batch_of(&Layout::trash_record(7, id)), Some(7));
    }

    #[test]
    fn resolve_refuses_escapes() {
        let l = Layout::new("/data");
        assert_eq!(l.resolve("hot/p/X.rows").unwrap(), PathBuf::from("/data/hot/p/X.rows"));
        assert!(l.resolve("../x").is_none());
        assert!(l.resolve("/etc/passwd").is_none());
    }
}
