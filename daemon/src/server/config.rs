//! Configuration: an optional TOML file over the embedded defaults, then command-line overrides.
//!
//! Every key is optional; `tierd.example.toml` lists them all with their defaults. Unknown keys and bad values are
//! errors that name the key, so a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tierd_codecs::BatchLimits;
use tierd_store::budget::BudgetConfig;
use tierd_store::cache::CacheConfig;
use tierd_store::cold::ColdConfig;
use tierd_store::hot::HotConfig;

mod access;
mod deletions;
mod http;
mod ingest;
mod projects;
mod query;
mod retention;
pub use access::{AccessTokenConfig, Role};
pub use deletions::{DeletionsPassSection, DeletionsSection};
pub use http::HttpSection;
pub use projects::{tokens as project_tokens, ProjectConfig, Secret, SecretSource, ServiceAccountConfig};
pub use query::QuerySection;

/// The first key whose value is 0, with the section validators' error: for limits that must let something through.
fn at_least_one(keys: &[(&'static str, u64)]) -> Result<(), (&'static str, String)> {
    match keys.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err((key, "must be at least 1".into())),
        None => Ok(()),
    }
}
pub use retention::RetentionPassSection;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the hot tier, the catalog and the quarantine live.
    pub data_dir: PathBuf,
    /// HTTP listen address. Loopback by default; any other address needs `[[access_tokens]]` and `/import`
    /// credentials (refused at start without them).
    pub listen: String,
    pub ingest: IngestConfig,
    pub hot: HotSection,
    pub catalog: CatalogConfig,
    pub rewrite: RewriteConfig,
    pub passes: PassesConfig,
    pub gc: GcSection,
    /// The cold tier's object store.
    pub cold: ColdConfig,
    /// The one IO budget of background work (0 = unlimited, per key).
    pub budget: BudgetConfig,
    /// The cache of cold bytes on the hot disk (0 = off).
    pub cache: CacheConfig,
    /// Read heat: how reads are counted and how fast they cool.
    pub heat: HeatSection,
    pub log: LogConfig,
    /// The tiering policy: rules, cost horizon, residency and hysteresis.
    pub policy: PolicySection,
    /// The prices the tiering policy and `tierd plan` bill with (`tierd simulate` uses the defaults).
    pub cost: tierd_policies::Prices,
    /// `tierd simulate`: the generated workload, the latency model and the age-only baseline (the server ignores
    /// it).
    pub simulate: tierd_policies::simulate::SimConfig,
    /// `[retention]`: days each project keeps its events (`default_days`, 0 = forever; `[retention.projects]`).
    pub retention: tierd_policies::RetentionPolicy,
    /// `[deletions]`: bounds on user-deletion requests.
    pub deletions: DeletionsSection,
    /// `[query]`: bounds on queries (concurrency, time, memory, groups, conditions).
    pub query: QuerySection,
    /// `[http]`: connections and client timeouts.
    pub http: HttpSection,
    /// `[[projects]]`: each project's token, by which `/track` events find their project, and `/import`'s
    /// credentials.
    pub projects: Vec<ProjectConfig>,
    /// `[[access_tokens]]`: bearer tokens of the query and admin API.
    pub access_tokens: Vec<AccessTokenConfig>,
}

/// `[policy]`: the tiering planner's settings and rules (see `tierd_policies::tiering`). The per-pass byte limit
/// stays `passes.migrate.max_bytes_per_pass`, and without `[[policy.rules]]` the default rule set sends idle data
/// cold after `passes.migrate.cold_after_secs`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// `[[policy.rules]]`, in order; absent: the default rule set.
    pub rules: Option<Vec<tierd_policies::Rule>>,
    /// A move that is not forced must pay for its one-time cost with its monthly saving over this many seconds.
    pub horizon_secs: u64,
    /// No segment moves within this many seconds of its last move (or of its creation, if it never moved).
    pub min_residency_secs: u64,
    /// Hysteresis: a move that is not forced takes a hot copy away only while the heat (reads/day) is at most this...
    pub cold_max_heat: f64,
    /// ...and brings one back only once it is at least this (larger than `cold_max_heat`).
    pub hot_min_heat: f64,
    /// `GET /v1/plan` and `tierd plan` list at most this many actions (the bill covers all of them): a plan over a
    /// large catalog stays a bounded answer.
    pub max_plan_actions: usize,
}

impl Default for PolicySection {
    fn default() -> Self {
        let p = tierd_policies::TieringPolicy::default();
        Self {
            rules: None,
            horizon_secs: (p.horizon_ms / 1000) as u64,
            min_residency_secs: (p.min_residency_ms / 1000) as u64,
            cold_max_heat: p.cold_max_heat,
            hot_min_heat: p.hot_min_heat,
            max_plan_actions: 10_000,
        }
    }
}

/// `[heat]`: the read heat of segments (see `tierd_store::heat`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HeatSection {
    /// After this many seconds a read counts half as much.
    pub half_life_secs: u64,
    /// At most this many segments have their heat tracked (in memory and in the catalog's `heat` tree); reads of
    /// further segments are refused and counted in `tierd_heat_refused_total`.
    pub max_tracked_segments: usize,
    /// What a catalog lookup returning a segment counts for, in reads (a query node's intent to read it).
    pub lookup_weight: f64,
}

impl Default for HeatSection {
    fn default() -> Self {
        let d = tierd_store::HeatConfig::default();
        Self {
            half_life_secs: (d.half_life.ms() / 1000) as u64,
            max_tracked_segments: d.max_tracked_segments,
            lookup_weight: d.lookup_weight,
        }
    }
}

/// Layout of the columnar segments rewrites write.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RewriteConfig {
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Dictionary-encode columns.
    pub dictionary: bool,
    /// Lossless dedup: the copies a rewrite's dedup removes are kept in a side segment for this many seconds, so
    /// that a wrong dedup can be inspected and undone; 0 drops them at once.
    pub keep_duplicates_secs: u64,
    /// Most memory one rewrite may hold. Rewrites stream (issue 13): they sort unsorted events in a buffer of at
    /// most three quarters of what the output writer leaves, spilling sorted runs to `DATA_DIR/spill`, and merge
    /// as many inputs at once as their row groups fit (in several levels when more), whatever the number of
    /// events (`tierd_policies::memory::stream_limits`). A rewrite that cannot (an input whose row group alone
    /// does not fit) is not started: reported, counted in `tierd_rewrites_refused_total`, never an OOM kill.
    pub max_memory_bytes: u64,
    /// Most shredded property columns (`p.<key>`) one Parquet segment gets; the least common keys past it stay in
    /// the `_props` JSON column. Bounds the width (footer, page index, writer memory) of a segment whatever the
    /// events carry.
    pub max_property_columns: usize,
    /// Threads each rewrite output encodes its column chunks on (1 to 64; 1: the pass's own thread). With more,
    /// the pass's thread reads, merges and builds record batches while these threads encode and compress the
    /// previous batches, each thread its share of the columns, at the passes' priority (`passes.nice`: they are
    /// started by the pass's thread). The output's bytes do not depend on it; each writer then holds two more
    /// record batches, counted against `rewrite.max_memory_bytes`.
    pub threads: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PassesConfig {
    /// How much lower than ingest and queries the CPU priority of the threads running passes and moves is (Linux
    /// nice, 0-19; 0 = the same): encoding, compression and checksums then use the CPU ingest leaves idle.
    pub nice: i32,
    /// Free bytes background writers (rewrites, promotions, restores) leave on the hot disk beyond
    /// `hot.min_free_bytes`, so that they stop before ingest is refused for lack of space; they resume by themselves
    /// when space comes back.
    pub disk_reserve_bytes: u64,
    /// Most segments waiting for a bad copy to be replaced from their other copy (reported by reads and the scrub,
    /// carried out by the migrate and promote passes); more are counted and dropped (reported again later).
    pub max_pending_repairs: usize,
    /// Most seconds a *scheduled* run of a rewrite or move pass (reencode, compact, recompress, migrate, promote)
    /// goes on starting new actions; then it stops between actions, leaving the rest to its next run, so the other
    /// passes (which run one at a time) get their turn: a long re-encode backlog no longer holds gc, migration and
    /// the rest back for minutes. Runs by hand are not cut. 0: no limit.
    pub max_run_secs: u64,
    pub reencode: ReencodeSection,
    pub compact: CompactSection,
    pub recompress: RecompressSection,
    pub migrate: MigrateSection,
    pub promote: PromoteSection,
    /// When the garbage collector runs (its settings are the top-level `[gc]` section).
    pub gc: GcPassSection,
    /// When read heat aggregated in memory is flushed to the catalog (the heat settings are `[heat]`).
    pub heat: HeatPassSection,
    /// When the retention pass removes events past `[retention]`, and how much it rewrites per run.
    pub retention: RetentionPassSection,
    /// When the deletions pass removes the rows of deletion requests from storage, and how much it rewrites per run.
    pub deletions: DeletionsPassSection,
    /// Most seconds a scheduled run starts after its cron fire time (deterministic per pass and fire time, and at
    /// most a tenth of the interval, so an every-second schedule still runs every second). Spreads passes that share
    /// a schedule, and nodes that share a configuration, over time.
    pub schedule_jitter_secs: u64,
}

/// `[passes.gc]`: only `schedule`, a cron expression with a seconds field (6 or 7 fields: sec min hour
/// day-of-month month day-of-week [year], UTC), or `""` to run it only by hand.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GcPassSection {
    pub schedule: String,
}

/// `[passes.heat]`: only `schedule` (as `[passes.gc]`'s), of the heat flush.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HeatPassSection {
    pub schedule: String,
}

/// The `promote` pass: the tiering plan's moves that bring a hot copy back or drop the cold one. Its byte limit is
/// `passes.migrate.max_bytes_per_pass`; what it moves, `[policy]` decides.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PromoteSection {
    pub schedule: String,
}

impl Default for PassesConfig {
    fn default() -> Self {
        Self {
            nice: 10,
            disk_reserve_bytes: 1024 * 1024 * 1024,
            max_pending_repairs: 10_000,
            max_run_secs: 60,
            reencode: ReencodeSection::default(),
            compact: CompactSection::default(),
            recompress: RecompressSection::default(),
            migrate: MigrateSection::default(),
            promote: PromoteSection::default(),
            gc: GcPassSection::default(),
            heat: HeatPassSection::default(),
            retention: RetentionPassSection::default(),
            deletions: DeletionsPassSection::default(),
            schedule_jitter_secs: 30,
        }
    }
}

impl Default for PromoteSection {
    fn default() -> Self {
        Self { schedule: "50 */5 * * * *".into() }
    }
}

impl Default for GcPassSection {
    /// Every 15 minutes: gc frees what the rewrites and moves retired, after `gc.grace_secs`.
    fn default() -> Self {
        Self { schedule: "20 */15 * * * *".into() }
    }
}

impl Default for HeatPassSection {
    /// Every 10 seconds: what a restart can lose of the read counts.
    fn default() -> Self {
        Self { schedule: "*/10 * * * * *".into() }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReencodeSection {
    /// Codec of the columnar segments re-encoding writes (the first rung of the ladder).
    pub codec: String,
    /// Most bytes of row segments re-encoded into one columnar segment.
    pub max_output_bytes: u64,
    /// Re-encode a row segment only this long after it was created.
    pub min_age_secs: u64,
    /// When the pass runs (cron, seconds first; `""` = only by hand).
    pub schedule: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CompactSection {
    /// Merge small columnar segments of one project and day up to this many bytes (summed input bytes).
    ///
    /// Default 8 MiB, measured (BENCHMARKS.md, "Compacted segment size") when a compaction held every input event
    /// decoded in memory (about 45-50x its input bytes); merges now stream within `rewrite.max_memory_bytes`
    /// whatever their size, so memory no longer bounds it. Bigger merged segments were not smaller per event then:
    /// 8 MiB was within about 1% of the best zstd-3 bytes/event measured, 16 MiB 3.8% and 145 MiB 9% above it (the
    /// (event, time) sort spreads each row group of a bigger segment over a longer time span).
    pub target_bytes: u64,
    /// A segment below `small_fraction * target_bytes` is small.
    pub small_fraction: f64,
    /// Fewest segments in one merge (at least 2).
    pub min_inputs: usize,
    /// When the pass runs (cron, seconds first; `""` = only by hand).
    pub schedule: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecompressSection {
    /// The codec ladder: a columnar segment whose newest event is at least `min_age_secs` old moves up to `codec`.
    /// A codec a `[[policy.rules]]` rule prescribes replaces the ladder for the segments that rule matches.
    pub ladder: Vec<LadderSection>,
    /// When the pass runs (cron, seconds first; `""` = only by hand).
    pub schedule: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LadderSection {
    pub min_age_secs: u64,
    pub codec: String,
}

/// Moves between the tiers, as the tiering policy (`[policy]`) plans them: `migrate` takes hot copies away or adds
/// cold ones, `promote` ([`PromoteSection`]) brings hot copies back or drops cold ones.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MigrateSection {
    /// Without `[[policy.rules]]`: the default `idle` rule sends columnar segments whose newest event is at least
    /// this old, and that are read at most `policy.cold_max_heat` times a day, cold (when the move pays). Not used
    /// when rules are given.
    pub cold_after_secs: u64,
    /// Most bytes one `migrate` or `promote` pass moves (at least one segment); the IO budget paces them.
    pub max_bytes_per_pass: u64,
    /// When `migrate` runs (cron, seconds first; `""` = only by hand); `promote` has its own `[passes.promote]`.
    pub schedule: String,
    /// Most bytes of the next segment's hot copy read ahead while a segment uploads (`store::moves::ReadAhead`: one
    /// segment at most; a larger one is read in its turn, counted in
    /// `tierd_move_read_ahead_total{outcome="refused"}`); 0 = no read-ahead. A move holds its whole copy in memory,
    /// so a pass holds at most its largest segment plus this.
    pub read_ahead_bytes: u64,
}

impl Default for MigrateSection {
    fn default() -> Self {
        Self {
            cold_after_secs: 7 * 86_400,
            max_bytes_per_pass: 64 * 1024 * 1024 * 1024,
            schedule: "40 */5 * * * *".into(),
            read_ahead_bytes: 256 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GcSection {
    /// A copy out of service (retired segment, moved-away copy) stays at least this long after it left service
    /// (and while any lease holds it); an unknown cold object must be this old to count as an orphan.
    pub grace_secs: u64,
    /// Deleted copies wait in the trash (`DATA_DIR/trash`, `trash/` in the bucket) this long before their final
    /// deletion, so that a mistaken deletion can be undone.
    pub trash_retention_secs: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Most events in one `/import` request (Mixpanel: 2000).
    pub max_events_per_request: usize,
    /// Most bytes in one `/import` request body, after gzip decoding (Mixpanel: 10 MiB).
    pub max_bytes_per_request: usize,
    /// Requests waiting for the hot writer before ingest answers 503.
    pub queue_batches: usize,
    /// Most requests committed together (group commit).
    pub group_max_batches: usize,
    /// Most properties of one event, `time`, `distinct_id` and `$insert_id` included (Mixpanel: 255). An event over
    /// it is a failed record (400, the whole batch refused).
    pub max_properties_per_event: usize,
    /// Most bytes of one event's JSON text as sent (Mixpanel: 1 MB). A bigger one is a failed record, never parsed.
    pub max_event_bytes: usize,
    /// Longest property name, in bytes (Mixpanel: 255 characters).
    pub max_property_name_bytes: usize,
    /// Most distinct UTC days in one request (413 beyond): each day is a segment file created, fsynced and held
    /// open, so this bounds the files and descriptors one request costs. `hot.max_open_segments` applies if smaller.
    pub max_days_per_request: usize,
    /// Most request bytes being decoded, parsed and encoded at once, over all requests (a byte-weighted
    /// semaphore: each request holds its compressed and its decompressed size until its batch is encoded, then its
    /// encoded size until it is acknowledged). Raised to one request at its largest if smaller.
    pub max_inflight_bytes: usize,
    /// How long a request waits for room under `max_inflight_bytes` before it is answered 503 with Retry-After.
    pub inflight_wait_ms: u64,
    /// Most events in one `/track` request (Mixpanel: 50; its SDKs batch 50 at a time). `max_events_per_request`
    /// applies if smaller.
    pub max_events_per_track_request: usize,
    /// Whether `/track?ip=1` records the client's address as the event property `ip` (off: personal data is kept
    /// only where the operator chose to keep it; the request is accepted either way).
    pub keep_client_ip: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HotSection {
    /// Seal an open segment at this size.
    pub seal_max_bytes: u64,
    /// Seal an open segment before it holds more events than this (a segment may pass it by one request's). 0, the
    /// default: no cap by events; `seal_max_bytes` and the age bound sealing. (Before rewrites streamed, the cap
    /// kept segments re-encodable within `rewrite.max_memory_bytes`; a rewrite's memory no longer grows with its
    /// events.)
    pub seal_max_events: u64,
    /// Seal an open segment this many seconds after it was created.
    pub seal_max_age_secs: u64,
    /// Seal by date: an open segment of UTC day D is sealed once the clock passes the end of D (or the segment's
    /// creation, if later) by this many seconds, even before `seal_max_age_secs`. Events of D arriving later open a
    /// new segment of D, which compaction merges: a longer allowance means fewer such stragglers, a shorter one
    /// means a finished day is re-encoded (and can go cold) sooner.
    pub seal_lateness_secs: u64,
    /// Most segments open for appends at once.
    pub max_open_segments: usize,
    /// Refuse ingest (503) when the hot tier holds this many bytes; 0 = no limit.
    pub max_bytes: u64,
    /// Refuse ingest (503) when the disk has less free space than this.
    pub min_free_bytes: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// How long a catalog lookup's lease keeps its segments readable.
    pub lease_ttl_secs: u64,
    /// Most leases live at once (lookups of the same segments share one); past it a lookup is answered 503.
    pub max_live_leases: usize,
    /// Free bytes every write to the catalog's database (sled) leaves on the data directory's disk: below it, lease
    /// grants, deletion requests, heat flushes, seals and every commit are refused (503) or wait, so that sled never
    /// meets a full disk (sled 0.34 keeps a failed write as an error that fails every later operation). At most
    /// `hot.min_free_bytes`; 0: no check.
    pub min_free_bytes: u64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `tierd_store=debug,info`; the `RUST_LOG` environment variable wins.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./tierd-data"),
            listen: "127.0.0.1:7070".into(),
            ingest: IngestConfig::default(),
            hot: HotSection::default(),
            catalog: CatalogConfig::default(),
            rewrite: RewriteConfig::default(),
            passes: PassesConfig::default(),
            gc: GcSection::default(),
            cold: ColdConfig::default(),
            budget: BudgetConfig::default(),
            cache: CacheConfig::default(),
            heat: HeatSection::default(),
            log: LogConfig::default(),
            policy: PolicySection::default(),
            cost: tierd_policies::Prices::default(),
            simulate: tierd_policies::simulate::SimConfig::default(),
            retention: tierd_policies::RetentionPolicy::default(),
            deletions: DeletionsSection::default(),
            query: QuerySection::default(),
            http: HttpSection::default(),
            projects: Vec::new(),
            access_tokens: Vec::new(),
        }
    }
}

impl Default for RewriteConfig {
    fn default() -> Self {
        let spec = tierd_codecs::columnar::CodecSpec::default();
        Self {
            row_group_rows: spec.row_group_rows,
            dictionary: spec.dictionary,
            keep_duplicates_secs: 7 * 86_400,
            max_memory_bytes: 256 * 1024 * 1024,
            max_property_columns: spec.max_property_columns,
            // Both cores of the 2-vCPU machines tierd is measured on (BENCHMARKS.md, "Rewrite speed").
            threads: 2,
        }
    }
}

impl Default for ReencodeSection {
    fn default() -> Self {
        Self {
            codec: "lz4".into(),
            max_output_bytes: 256 * 1024 * 1024,
            min_age_secs: 0,
            // Every minute: a sealed row segment is columnar within about a minute of sealing.
            schedule: "0 * * * * *".into(),
        }
    }
}

impl Default for CompactSection {
    fn default() -> Self {
        // Measured, see `target_bytes`: memory bounds it, bytes/event does not reward more.
        // Every minute, half a minute after re-encoding, whose outputs it merges.
        Self { target_bytes: 8 * 1024 * 1024, small_fraction: 0.5, min_inputs: 2, schedule: "30 * * * * *".into() }
    }
}

impl Default for RecompressSection {
    fn default() -> Self {
        Self {
            ladder: vec![
                LadderSection { min_age_secs: 86_400, codec: "zstd-3".into() },
                // Before `passes.migrate.cold_after_secs` (7 days): rewrites read only segments with a hot copy, so
                // data reaches its last rung while still hot and goes cold at its smallest.
                LadderSection { min_age_secs: 6 * 86_400, codec: "zstd-19".into() },
            ],
            // Every 10 minutes: the ladder's steps are days apart.
            schedule: "15 */10 * * * *".into(),
        }
    }
}

impl Default for GcSection {
    fn default() -> Self {
        Self { grace_secs: 300, trash_retention_secs: 86_400 }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        let hot = HotConfig::default();
        Self {
            max_events_per_request: 2000,
            max_bytes_per_request: 10 * 1024 * 1024,
            queue_batches: hot.queue_batches,
            group_max_batches: hot.group_max_batches,
            max_properties_per_event: BatchLimits::MIXPANEL.max_properties,
            max_event_bytes: BatchLimits::MIXPANEL.max_event_bytes,
            max_property_name_bytes: BatchLimits::MIXPANEL.max_property_name_bytes,
            max_days_per_request: 64,
            max_inflight_bytes: 128 * 1024 * 1024,
            inflight_wait_ms: 5_000,
            max_events_per_track_request: 50,
            keep_client_ip: false,
        }
    }
}

impl Default for HotSection {
    fn default() -> Self {
        let hot = HotConfig::default();
        Self {
            seal_max_bytes: hot.seal_max_bytes,
            seal_max_events: 0,
            seal_max_age_secs: (hot.seal_max_age_ms / 1000) as u64,
            seal_lateness_secs: (hot.seal_lateness_ms / 1000) as u64,
            max_open_segments: hot.max_open_segments,
            max_bytes: hot.max_bytes,
            min_free_bytes: hot.min_free_bytes,
        }
    }
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self { lease_ttl_secs: 300, max_live_leases: 100_000, min_free_bytes: 64 * 1024 * 1024 }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into() }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Parses a TOML document; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: origin.to_path_buf(), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read { path: path.to_path_buf(), source: e })?;
        Self::from_toml(&text, path)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| Err(ConfigError::Invalid { key, message: message.to_string() });
        if self.listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::Invalid {
                key: "listen",
                message: format!("{:?} is not an address like 127.0.0.1:7070", self.listen),
            });
        }
        // (broken, key, what it must be), checked in this order.
        let checks: [(bool, &'static str, &str); 11] = [
            (self.data_dir.as_os_str().is_empty(), "data_dir", "must not be empty"),
            (
                !(0..=19).contains(&self.passes.nice),
                "passes.nice",
                "must be 0 to 19 (how much lower than ingest background threads run)",
            ),
            (self.ingest.max_events_per_request == 0, "ingest.max_events_per_request", "must be at least 1"),
            (self.ingest.max_bytes_per_request < 1024, "ingest.max_bytes_per_request", "must be at least 1024 bytes"),
            (self.ingest.queue_batches == 0, "ingest.queue_batches", "must be at least 1"),
            (self.ingest.group_max_batches == 0, "ingest.group_max_batches", "must be at least 1"),
            (self.hot.seal_max_bytes < 4096, "hot.seal_max_bytes", "must be at least 4096 bytes"),
            (self.hot.seal_max_age_secs == 0, "hot.seal_max_age_secs", "must be at least 1 second"),
            (self.hot.max_open_segments == 0, "hot.max_open_segments", "must be at least 1"),
            (self.catalog.lease_ttl_secs == 0, "catalog.lease_ttl_secs", "must be at least 1 second"),
            (self.catalog.max_live_leases == 0, "catalog.max_live_leases", "must be at least 1"),
        ];
        if let Some((_, key, message)) = checks.into_iter().find(|(broken, ..)| *broken) {
            return invalid(key, message);
        }
        if self.catalog.min_free_bytes > self.hot.min_free_bytes {
            return Err(ConfigError::Invalid {
                key: "catalog.min_free_bytes",
                message: format!(
                    "{} is more than hot.min_free_bytes = {}: the catalog's headroom must be the smallest reserve, \
                     so that ingest is refused for lack of space before the catalog is",
                    self.catalog.min_free_bytes, self.hot.min_free_bytes
                ),
            });
        }
        use tierd_policies::RewritePlanner;
        let policy =
            |key: &'static str, e: tierd_policies::PolicyError| ConfigError::Invalid { key, message: e.to_string() };
        self.reencode_planner().validate().map_err(|e| policy("passes.reencode", e))?;
        self.compact_planner().validate().map_err(|e| policy("passes.compact", e))?;
        self.recompress_planner().validate().map_err(|e| policy("passes.recompress", e))?;
        self.schedules()?;
        if self.passes.migrate.max_bytes_per_pass == 0 {
            return invalid("passes.migrate.max_bytes_per_pass", "is zero: no segment could ever move");
        }
        self.tiering_policy().validate().map_err(|e| policy("policy", e))?;
        if self.policy.max_plan_actions == 0 {
            return invalid("policy.max_plan_actions", "is zero: a plan could list nothing");
        }
        self.prices().validate().map_err(|e| policy("cost", e))?;
        self.retention.validate().map_err(|e| policy("retention", e))?;
        if self.passes.retention.max_rewrite_bytes_per_pass == 0 {
            return invalid(
                "passes.retention.max_rewrite_bytes_per_pass",
                "is zero: no straddling segment could be rewritten",
            );
        }
        if let Err((key, message)) = self.deletions.validate() {
            return invalid(key, &message);
        }
        if let Err((key, message)) = self.query.validate() {
            return invalid(key, &message);
        }
        if let Err((key, message)) = self.http.validate() {
            return invalid(key, &message);
        }
        if let Err((key, message)) = self.ingest.validate() {
            return invalid(key, &message);
        }
        if let Err((key, message)) = projects::validate(&self.projects) {
            return invalid(key, &message);
        }
        if let Err((key, message)) = access::validate(&self.access_tokens) {
            return invalid(key, &message);
        }
        if self.passes.deletions.max_rewrite_bytes_per_pass == 0 {
            return invalid("passes.deletions.max_rewrite_bytes_per_pass", "is zero: no segment could be rewritten");
        }
        let rules = self.policy.rules.iter().flatten();
        let codecs = std::iter::once(("passes.reencode.codec", &self.passes.reencode.codec))
            .chain(self.passes.recompress.ladder.iter().map(|s| ("passes.recompress.ladder.codec", &s.codec)))
            .chain(rules.filter_map(|r| r.codec.as_ref()).map(|c| ("policy.rules.codec", c)));
        for (key, codec) in codecs {
            if let Err(e) = codec.parse::<tierd_store::catalog::Codec>() {
                return Err(ConfigError::Invalid { key, message: e });
            }
        }
        match self.cold.validate() {
            Ok(()) => {}
            Err(tierd_store::StoreError::Config { key, message }) => return Err(ConfigError::Invalid { key, message }),
            Err(other) => return Err(ConfigError::Invalid { key: "cold", message: other.to_string() }),
        }
        self.heat_config()?;
        if !(1..=64).contains(&self.rewrite.threads) {
            return invalid(
                "rewrite.threads",
                "must be 1 to 64 (threads encoding each rewrite output; 1: none but the pass's)",
            );
        }
        if self.rewrite.row_group_rows == 0 {
            return invalid("rewrite.row_group_rows", "must be at least 1");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return invalid("log.level", "is not a tracing filter such as `info` or `tierd_store=debug,info`");
        }
        Ok(())
    }

    /// Every scheduled job's name and schedule, in a fixed order (the passes of [`crate::api::PassName::ALL`], then
    /// the heat flush); an expression that does not parse is an error naming its key.
    pub fn schedules(&self) -> Result<Vec<(&'static str, tierd_policies::Schedule)>, ConfigError> {
        let p = &self.passes;
        let exprs = [
            ("reencode", "passes.reencode.schedule", &p.reencode.schedule),
            ("compact", "passes.compact.schedule", &p.compact.schedule),
            ("recompress", "passes.recompress.schedule", &p.recompress.schedule),
            ("migrate", "passes.migrate.schedule", &p.migrate.schedule),
            ("promote", "passes.promote.schedule", &p.promote.schedule),
            ("gc", "passes.gc.schedule", &p.gc.schedule),
            ("retention", "passes.retention.schedule", &p.retention.schedule),
            ("deletions", "passes.deletions.schedule", &p.deletions.schedule),
            ("heat", "passes.heat.schedule", &p.heat.schedule),
        ];
        exprs
            .into_iter()
            .map(|(name, key, expr)| {
                tierd_policies::Schedule::parse(key, expr)
                    .map(|s| (name, s))
                    .map_err(|e| ConfigError::Invalid { key, message: e.to_string() })
            })
            .collect()
    }

    /// The most jitter of a scheduled run, in ms.
    pub fn schedule_jitter_ms(&self) -> i64 {
        secs_to_ms(self.passes.schedule_jitter_secs)
    }

    /// The keys of `new` that differ from `self` and take a restart to change (the hot writer, the cold store,
    /// the cache, the listener and the catalog are opened once): a reload that changes any is refused whole.
    pub fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut check = |differs: bool, key: &'static str| {
            if differs {
                changed.push(key);
            }
        };
        check(self.data_dir != new.data_dir, "data_dir");
        check(self.listen != new.listen, "listen");
        check(self.ingest != new.ingest, "ingest");
        check(self.hot != new.hot, "hot");
        check(self.catalog != new.catalog, "catalog");
        check(self.cold != new.cold, "cold");
        check(self.budget != new.budget, "budget");
        check(self.cache != new.cache, "cache");
        check(self.heat != new.heat, "heat");
        check(self.log != new.log, "log");
        check(self.http != new.http, "http");
        check(self.projects != new.projects, "projects");
        check(self.access_tokens != new.access_tokens, "access_tokens");
        changed
    }

    pub fn reencode_planner(&self) -> tierd_policies::ReencodePlanner {
        let r = &self.passes.reencode;
        tierd_policies::ReencodePlanner {
            output_codec: r.codec.clone(),
            max_output_bytes: r.max_output_bytes,
            min_age_ms: secs_to_ms(r.min_age_secs),
        }
    }

    /// The tiering planner of the migrate, promote, recompress and compact passes and of `tierd plan`.
    /// The cost model's prices (`[cost]`), with the request shapes of this daemon's cold tier: its multipart
    /// threshold and part size.
    pub fn prices(&self) -> tierd_policies::Prices {
        tierd_policies::Prices {
            multipart_threshold_bytes: self.cold.multipart_threshold_bytes,
            upload_part_bytes: self.cold.part_size_bytes,
            ..self.cost.clone()
        }
    }

    pub fn tiering_policy(&self) -> tierd_policies::TieringPolicy {
        let (p, m) = (&self.policy, &self.passes.migrate);
        tierd_policies::TieringPolicy {
            rules: p
                .rules
                .clone()
                .unwrap_or_else(|| tierd_policies::rules::default_rules_idle_after(m.cold_after_secs)),
            horizon_ms: secs_to_ms(p.horizon_secs),
            min_residency_ms: secs_to_ms(p.min_residency_secs),
            cold_max_heat: p.cold_max_heat,
            hot_min_heat: p.hot_min_heat,
            max_bytes_per_pass: m.max_bytes_per_pass,
            compact_min_inputs: self.passes.compact.min_inputs,
            compact_small_fraction: self.passes.compact.small_fraction,
        }
    }

    /// The garbage collector's settings.
    pub fn gc_config(&self) -> tierd_store::gc::GcConfig {
        let ms = |secs: u64| i64::try_from(secs).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
        tierd_store::gc::GcConfig {
            grace_ms: ms(self.gc.grace_secs),
            lease_ttl_ms: ms(self.catalog.lease_ttl_secs),
            trash_retention_ms: ms(self.gc.trash_retention_secs),
            erase_trash_retention_ms: ms(self.deletions.trash_retention_secs),
        }
    }

    pub fn compact_planner(&self) -> tierd_policies::CompactPlanner {
        let c = &self.passes.compact;
        tierd_policies::CompactPlanner {
            target_bytes: c.target_bytes,
            min_inputs: c.min_inputs,
            small_fraction: c.small_fraction,
        }
    }

    pub fn recompress_planner(&self) -> tierd_policies::RecompressPlanner {
        tierd_policies::RecompressPlanner {
            ladder: self
                .passes
                .recompress
                .ladder
                .iter()
                .map(|s| tierd_policies::LadderStep { min_age_ms: secs_to_ms(s.min_age_secs), codec: s.codec.clone() })
                .collect(),
        }
    }

    /// The heat tracker's settings, or the error naming the `[heat]` key that is wrong.
    pub fn heat_config(&self) -> Result<tierd_store::HeatConfig, ConfigError> {
        let h = &self.heat;
        let invalid = |key, message: &str| ConfigError::Invalid { key, message: message.to_string() };
        let half_life = tierd_policies::HalfLife::from_secs(h.half_life_secs)
            .map_err(|_| invalid("heat.half_life_secs", "must be at least 1 second"))?;
        if h.max_tracked_segments == 0 {
            return Err(invalid("heat.max_tracked_segments", "must be at least 1"));
        }
        if !(h.lookup_weight.is_finite() && (0.0..=1.0).contains(&h.lookup_weight)) {
            return Err(invalid("heat.lookup_weight", "must be a number from 0 to 1 (what a lookup counts, in reads)"));
        }
        Ok(tierd_store::HeatConfig {
            half_life,
            max_tracked_segments: h.max_tracked_segments,
            lookup_weight: h.lookup_weight,
        })
    }

    /// `hot.seal_max_events`, `u64::MAX` (no cap) for 0.
    pub fn seal_max_events(&self) -> u64 {
        match self.hot.seal_max_events {
            0 => u64::MAX,
            n => n,
        }
    }

    pub fn hot_config(&self) -> HotConfig {
        HotConfig {
            seal_max_bytes: self.hot.seal_max_bytes,
            seal_max_rows: self.seal_max_events(),
            seal_max_age_ms: (self.hot.seal_max_age_secs as i64).saturating_mul(1000),
            seal_lateness_ms: secs_to_ms(self.hot.seal_lateness_secs),
            max_open_segments: self.hot.max_open_segments,
            max_bytes: self.hot.max_bytes,
            min_free_bytes: self.hot.min_free_bytes,
            queue_batches: self.ingest.queue_batches,
            group_max_batches: self.ingest.group_max_batches,
        }
    }
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX / 1000).saturating_mul(1000)
}

#[cfg(test)]
mod tests;
