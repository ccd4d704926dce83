//! Pure placement decisions for tierd.
//!
//! This crate will own every *decision* about where segments live and when they are rewritten, as pure functions
//! of their inputs (no I/O, no clock: `now` is an argument), so that they can be property-tested and previewed:
//!
//! - per-segment read heat (decayed access counts) and its aggregation;
//! - placement and rewrite rules (age, heat, size, retention);
//! - the storage cost model (bytes x $/GB-month per tier, requests, retrieval) behind `tierd plan`'s dollar what-if;
//! - planning: `fn plan(&self, now, segments) -> Vec<Action>` with a reason and a projected cost per action;
//! - cron schedules computing their next fire time from a given `now`.
//!
//! Nothing here is used yet: the foundation issue builds ingest, the catalog and the read path; the policies arrive
//! with the tiering issues. `store` and `daemon` depend on this crate so the direction of dependencies is fixed now:
//! daemon -> store -> codecs/policies.
