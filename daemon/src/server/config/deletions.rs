//! `[deletions]`: the bounds on user-deletion requests (`POST /v1/admin/deletions`, see `tierd_store::deletions`).
//! Read at each request from the configuration in force, so a reload changes them.

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
}

impl Default for DeletionsSection {
    fn default() -> Self {
        Self { max_ids_per_request: 2000, max_request_bytes: 256 * 1024, max_active_requests: 1000 }
    }
}

impl DeletionsSection {
    /// The store's limits.
    pub fn limits(&self) -> DeletionLimits {
        DeletionLimits {
            max_ids_per_request: self.max_ids_per_request,
            max_request_bytes: self.max_request_bytes,
            max_active_requests: self.max_active_requests,
        }
    }

    /// Every limit must let at least one request through.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, value) in [
            ("deletions.max_ids_per_request", self.max_ids_per_request),
            ("deletions.max_request_bytes", self.max_request_bytes),
            ("deletions.max_active_requests", self.max_active_requests),
        ] {
            if value == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        Ok(())
    }
}
