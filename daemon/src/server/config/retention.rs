//! `[retention]` and `[passes.retention]`: how long each project keeps its events, and when and how much the
//! `retention` pass removes (see `tierd_policies::retention` and `super::super::retention`).

use serde::Deserialize;

/// `[passes.retention]`: when the retention pass runs, and how much it rewrites per run.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionPassSection {
    /// When the pass runs (cron, seconds first; `""` = only by hand). Queries hide expired events whatever it is.
    pub schedule: String,
    /// Most bytes of straddling segments one run rewrites (at least one segment); the rest waits for the next run.
    /// Retiring a wholly expired segment reads nothing and is not limited.
    pub max_rewrite_bytes_per_pass: u64,
}

impl Default for RetentionPassSection {
    /// Every hour: retention is counted in days, and readers hide expired events in the meantime.
    fn default() -> Self {
        Self { schedule: "0 45 * * * *".into(), max_rewrite_bytes_per_pass: 16 * 1024 * 1024 * 1024 }
    }
}
