//! `GET /v1/status`: what the scheduler does (each scheduled job's schedule, next run, last run and counts) and
//! how the last configuration reload went. `tierd status` shows it as a table.

use serde::{Deserialize, Serialize};
use tierd_store::labelled_enum;

labelled_enum! {
    /// How a run ended. `skipped`: its fire time came while the previous run was still going (never overlaps).
    pub enum RunOutcome {
        Ok = "ok",
        Failed = "failed",
        Skipped = "skipped",
    }
}

labelled_enum! {
    /// What started a run: its cron schedule, or an operator (`POST /v1/admin/passes/{name}/run`).
    pub enum RunTrigger {
        Schedule = "schedule",
        Manual = "manual",
    }
}

labelled_enum! {
    /// What a configuration reload did: applied whole, or refused whole (the old configuration stays).
    pub enum ReloadOutcome {
        Applied = "applied",
        Refused = "refused",
    }
}

/// The body of `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusAnswer {
    /// The daemon's clock.
    pub now_ms: i64,
    /// Whether scheduled runs happen (`false` under `tierd serve --no-schedules`: passes run only by hand).
    pub scheduler: bool,
    /// One entry per scheduled job (passes, heat flush), in a fixed order.
    pub passes: Vec<PassStatus>,
    pub config: ConfigStatus,
    /// Segments with no good copy (missing, cut short or failing their checksum on their only tier), each reported
    /// once by whoever found it; reads of them fail with an error naming them.
    #[serde(default)]
    pub damaged_segments: Vec<tierd_store::repair::Damage>,
}

/// One scheduled job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassStatus {
    pub name: String,
    /// The cron expression (`""` = only by hand).
    pub schedule: String,
    /// Whether the scheduler runs it: a schedule is set, the scheduler is on and the job exists.
    pub enabled: bool,
    /// When the next scheduled run starts (fire time plus jitter); `null` when not enabled.
    pub next_run_ms: Option<i64>,
    /// A run is going now.
    pub running: bool,
    /// The last finished run, scheduled or manual (dry runs are not runs).
    pub last_run: Option<RunRecord>,
    /// Finished runs, failed ones included.
    pub runs: u64,
    pub failures: u64,
    /// Fire times skipped because the previous run was still going.
    pub skipped: u64,
}

/// One finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub trigger: RunTrigger,
    pub started_ms: i64,
    pub finished_ms: i64,
    /// Measured on the monotonic clock (the daemon's clock can be a test clock that jumps).
    pub duration_ms: u64,
    pub outcome: RunOutcome,
    pub actions: u64,
    pub errors: u64,
    /// The first error, or why the run failed as a whole (a panic, a task that could not start).
    pub message: Option<String>,
}

/// The configuration file and its reloads (SIGHUP, `POST /v1/admin/config/reload`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigStatus {
    /// The file reloads read; `null` when the daemon started without `--config` (nothing to reload).
    pub path: Option<String>,
    /// Reloads applied and refused since the start.
    pub reloads_applied: u64,
    pub reloads_refused: u64,
    pub last_reload: Option<ReloadRecord>,
}

/// One reload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadRecord {
    pub at_ms: i64,
    pub outcome: ReloadOutcome,
    /// What changed, or why it was refused.
    pub message: String,
}
