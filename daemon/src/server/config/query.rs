//! `[query]`: the bounds of `POST /v1/query` (see `tierd_store::query::QueryLimits`). Read at each query from the
//! configuration in force, so a reload changes them; queries already running keep the bounds they started with.

use serde::Deserialize;

/// `[query]`: how many queries run at once, for how long, and how much memory and how many groups each may hold.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySection {
    /// Most queries running at once; more are answered 503 with Retry-After at once (never queued).
    pub max_concurrent: usize,
    /// A query still running after this many milliseconds is stopped and answered 503.
    pub timeout_ms: u64,
    /// Most estimated bytes one query's dedup state and groups may hold (dedup state is per day); more is a 413.
    pub max_memory_bytes: u64,
    /// Most estimated bytes all running queries may hold together; a query that would cross it gets a 503.
    pub max_total_memory_bytes: u64,
    /// Most groups (distinct values of `group_by`) one query may build; more is a 413 (`limit` trims the answer,
    /// not the work).
    pub max_groups: usize,
    /// Most `where` conditions in one query; more is a 413.
    pub max_conditions: usize,
    /// Threads one query counts its days that need no dedup on (days held by one columnar segment), at most.
    pub threads: usize,
}

impl Default for QuerySection {
    fn default() -> Self {
        Self {
            max_concurrent: 8,
            timeout_ms: 60_000,
            max_memory_bytes: 256 * 1024 * 1024,
            max_total_memory_bytes: 1024 * 1024 * 1024,
            max_groups: 100_000,
            max_conditions: 64,
            threads: 2,
        }
    }
}

impl QuerySection {
    /// Every bound must let a query through.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        super::at_least_one(&[
            ("query.max_concurrent", self.max_concurrent as u64),
            ("query.timeout_ms", self.timeout_ms),
            ("query.max_memory_bytes", self.max_memory_bytes),
            ("query.max_total_memory_bytes", self.max_total_memory_bytes),
            ("query.max_groups", self.max_groups as u64),
            ("query.max_conditions", self.max_conditions as u64),
            ("query.threads", self.threads as u64),
        ])?;
        if self.max_total_memory_bytes < self.max_memory_bytes {
            return Err((
                "query.max_total_memory_bytes",
                format!(
                    "is below query.max_memory_bytes ({}): one query could never get its share",
                    self.max_memory_bytes
                ),
            ));
        }
        Ok(())
    }
}
