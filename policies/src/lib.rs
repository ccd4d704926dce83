//! Pure placement decisions for tierd.
//!
//! This crate owns every *decision* about where segments live and when they are rewritten, as pure functions of
//! their inputs (no I/O, no clock: `now_ms` is an argument), so that they can be property-tested and previewed.
//! `store` and `daemon` carry the decisions out; dependencies point one way: daemon -> store -> codecs/policies.
//!
//! The rewrite planners: each is a [`RewritePlanner`], `plan(now_ms, segments) -> Vec<RewriteAction>`
//! over one catalog snapshot of [`SegmentStats`], each action naming its inputs, its output codec, the bytes it
//! reads and a human-readable reason with the numbers behind it.
//!
//! - [`reencode`]: sealed row segments -> columnar, packed per (project, day) up to a size limit, once old enough;
//! - [`compact`]: small columnar segments of one (project, day) -> one merged segment (late events included);
//! - [`recompress`]: a columnar segment -> a stronger codec as its newest event ages up a codec ladder.
//!
//! Every plan keeps the invariants listed on [`RewritePlanner`] (order of the input does not matter, no segment is
//! acted on twice, only sealed segments of the right format, one (project, day) per action, `bytes_before` exact);
//! `tests/planner_properties.rs` checks them for arbitrary segment sets. Configurations are checked with
//! [`RewritePlanner::validate`], whose [`PolicyError`] names the offending field.
//!
//! And tiering: [`rules`] (ordered, declarative `[[policy.rules]]`: placement, codec and compaction prescriptions
//! matched on project, age, heat, size, format, tier and hot-disk fill; first match per aspect) and [`tiering`], the
//! planner that turns them into priced moves within residency, hysteresis, capacity and per-pass limits, with the
//! bill before and after ([`cost`] prices it). Placement follows read heat and cost as well as age; the idle age is
//! one condition of the default rule set ([`rules::default_rules`]). `tests/tiering_properties.rs` checks the
//! planner's invariants for arbitrary catalogs and rule sets.
//!
//! And [`heat`]: per-segment read heat, an exponentially decayed read count with a half-life, as reads and bytes
//! per day (aggregated and persisted by `store::heat`).
//!
//! And [`schedule`]: the cron schedules of the background passes, the next fire time after a given `now` and a
//! deterministic, bounded jitter.
//!
//! And [`simulate`]: `tierd simulate`'s replay of a workload through all-hot, age-only and the tiering planner on a
//! simulated clock, with cost, read latency and bytes moved. Besides: [`gc`] (which copies out of service may be
//! deleted, and why every other stays) and [`retry`] (backoff with jitter, deadlines, `Retry-After`).
//!
//! And [`retention`]: per-project retention in days, each project's cutoff, and which segments past it are
//! retired whole or rewritten without their expired rows (`tests/retention_properties.rs`).

pub mod compact;
pub mod cost;
mod error;
pub mod gc;
pub mod heat;
mod human;
pub mod memory;
mod planner;
pub mod recompress;
pub mod reencode;
pub mod retention;
pub mod retry;
pub mod rules;
pub mod schedule;
mod segment;
pub mod simulate;
#[cfg(test)]
mod testing;
pub mod tiering;

pub use compact::CompactPlanner;
pub use cost::{Prices, StorageClass};
pub use error::PolicyError;
pub use heat::{HalfLife, Heat};
pub use planner::RewritePlanner;
pub use recompress::{LadderStep, RecompressPlanner};
pub use reencode::ReencodePlanner;
pub use retention::{RetentionAction, RetentionActionKind, RetentionPlan, RetentionPolicy, RetentionSegment};
pub use retry::RetryPolicy;
pub use rules::Rule;
pub use schedule::{NextRun, Schedule};
pub use segment::{Placement, RewriteAction, RewriteKind, SegmentFormat, SegmentState, SegmentStats};
pub use tiering::{Capacity, TierCost, TieringAction, TieringActionKind, TieringPlan, TieringPolicy};
