//! `[deletions]`: the bounds on user-deletion requests (`POST /v1/admin/deletions`, see `tierd_store::deletions`).
//! Read at each request from the configuration in force, so a reload changes them. `[passes.deletions]`: the pass
//! that carries the requests out (`super::super::deletions`).

use serde::Deserialize;
use tierd_store::DeletionLimits;

/// `[deletions]`: how big one request may be, and how many may wait to be carried out.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeletionsSection {
    /// Most distinct ids in one request (Mixpanel's deletion API takes up to 1999 per request).
    pub max_ids_per_request: usize,
    /// Most bytes of distinct ids (UTF-8, summed) in one request.
    pub max_request_bytes: usize,
    /// Most requests not yet done. Each one is a tombstone every read of its project evaluates until the deletions
    /// are carried out, so this bounds the memory and the per-row cost of reads.
    pub max_active_requests: usize,
    /// Most `where` conditions in one filtered delete (each is evaluated on every row of its project read while the
    /// request is not done).
    pub max_conditions: usize,
    /// How long gc keeps copies that may hold deleted rows in the trash (seconds). 0, the default: they skip the
    /// trash and are deleted for good once leases, readers and the grace period allow, because keeping erased data
    /// for a day may itself breach the request. Above `gc.trash_retention_secs` it changes nothing.
    pub trash_retention_secs: u64,
}

impl Default for DeletionsSection {
    fn default() -> Self {
        Self {
            max_ids_per_request: 2000,
            max_request_bytes: 256 * 1024,
            max_active_requests: 1000,
            max_conditions: 16,
            trash_retention_secs: 0,
        }
    }
}

impl DeletionsSection {
    /// The store's limits.
    pub fn limits(&self) -> DeletionLimits {
        DeletionLimits {
            max_ids_per_request: self.max_ids_per_request,
            max_request_bytes: self.max_request_bytes,
            max_active_requests: self.max_active_requests,
            max_conditions: self.max_conditions,
        }
    }

    /// Every limit must let at least one request through.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        super::at_least_one(&[
            ("deletions.max_ids_per_request", self.max_ids_per_request as u64),
            ("deletions.max_request_bytes", self.max_request_bytes as u64),
            ("deletions.max_active_requests", self.max_active_requests as u64),
            ("deletions.max_conditions", self.max_conditions as u64),
        ])?;
        Ok(())
    }
}

/// `[passes.deletions]`: when the deletions pass removes the rows of deletion requests from storage, and how much it
/// rewrites per run.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeletionsPassSection {
    /// When the pass runs (cron, seconds first; `""` = only by hand). Readers hide the rows whatever it is.
    pub schedule: String,
    /// Most bytes of segments one run reads to rewrite (at least one segment); the rest waits for the next run.
    pub max_rewrite_bytes_per_pass: u64,
}

impl Default for DeletionsPassSection {
    /// Every ten minutes: the tombstones hide the rows at once, the pass frees the bytes soon after.
    fn default() -> Self {
        Self { schedule: "0 */10 * * * *".into(), max_rewrite_bytes_per_pass: 16 * 1024 * 1024 * 1024 }
    }
}
