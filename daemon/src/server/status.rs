//! The scheduler's board: per scheduled job its schedule, next run, last run and counts, and the reload history,
//! behind `GET /v1/status`. The board is also where run and reload metrics are recorded, so that what the status
//! page says and what Prometheus counts cannot disagree.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use crate::api::{
    ConfigStatus, PassStatus, ReloadOutcome, ReloadRecord, RunOutcome, RunRecord, RunTrigger, StatusAnswer,
};

#[derive(Debug, Default)]
struct Entry {
    order: usize,
    schedule: String,
    enabled: bool,
    next_run_ms: Option<i64>,
    running: bool,
    last_run: Option<RunRecord>,
    runs: u64,
    failures: u64,
    skipped: u64,
}

#[derive(Debug)]
pub struct StatusBoard {
    jobs: Mutex<BTreeMap<String, Entry>>,
    config: Mutex<ConfigStatus>,
    scheduler: bool,
}

impl StatusBoard {
    /// A board for the jobs `names` (in that order); `scheduler` says whether scheduled runs happen at all.
    pub fn new(names: &[&str], scheduler: bool, config_path: Option<String>) -> Self {
        let jobs = names.iter().enumerate().map(|(order, n)| (n.to_string(), Entry { order, ..Entry::default() }));
        Self {
            jobs: Mutex::new(jobs.collect()),
            config: Mutex::new(ConfigStatus {
                path: config_path,
                reloads_applied: 0,
                reloads_refused: 0,
                last_reload: None,
            }),
            scheduler,
        }
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut jobs = self.jobs.lock();
        let order = jobs.len();
        f(jobs.entry(name.to_string()).or_insert_with(|| Entry { order, ..Entry::default() }))
    }

    /// The job's schedule and next run (`None`: not scheduled); also the next-run gauge (0 when none).
    pub fn set_next(&self, name: &str, schedule: &str, enabled: bool, next_run_ms: Option<i64>) {
        self.with(name, |e| {
            e.schedule = schedule.to_string();
            e.enabled = enabled;
            e.next_run_ms = next_run_ms;
        });
        let secs = next_run_ms.map_or(0.0, |ms| ms as f64 / 1000.0);
        metrics::gauge!("tierd_pass_next_run_timestamp_seconds", "pass" => name.to_string()).set(secs);
    }

    /// Marks a scheduled run of `name` as started; `false` (and a skip counted) when one is still going.
    pub fn try_begin(&self, name: &str) -> bool {
        let begun = self.with(name, |e| {
            if e.running {
                e.skipped += 1;
                false
            } else {
                e.running = true;
                true
            }
        });
        if !begun {
            metrics::counter!("tierd_pass_skipped_total", "pass" => name.to_string()).increment(1);
            metrics::counter!("tierd_pass_runs_total", "pass" => name.to_string(), "outcome" => "skipped",
                "trigger" => RunTrigger::Schedule.label())
            .increment(1);
        }
        begun
    }

    /// Records a finished run (clearing `running` for a scheduled one) and its metrics.
    pub fn finish(&self, name: &str, run: RunRecord) {
        metrics::counter!("tierd_pass_runs_total", "pass" => name.to_string(), "outcome" => run.outcome.label(),
            "trigger" => run.trigger.label())
        .increment(1);
        metrics::histogram!("tierd_pass_seconds", "pass" => name.to_string()).record(run.duration_ms as f64 / 1000.0);
        self.with(name, |e| {
            if run.trigger == RunTrigger::Schedule {
                e.running = false;
            }
            e.runs += 1;
            if run.outcome == RunOutcome::Failed {
                e.failures += 1;
            }
            e.last_run = Some(run);
        });
    }

    /// Records a reload and counts it (`tierd_config_reloads_total{outcome}`).
    pub fn reloaded(&self, record: ReloadRecord) {
        metrics::counter!("tierd_config_reloads_total", "outcome" => record.outcome.label()).increment(1);
        let mut c = self.config.lock();
        match record.outcome {
            ReloadOutcome::Applied => c.reloads_applied += 1,
            ReloadOutcome::Refused => c.reloads_refused += 1,
        }
        c.last_reload = Some(record);
    }

    pub fn answer(&self, now_ms: i64) -> StatusAnswer {
        let jobs = self.jobs.lock();
        let mut passes: Vec<(usize, PassStatus)> = jobs
            .iter()
            .map(|(name, e)| {
                (
                    e.order,
                    PassStatus {
                        name: name.clone(),
                        schedule: e.schedule.clone(),
                        enabled: e.enabled,
                        next_run_ms: e.next_run_ms,
                        running: e.running,
                        last_run: e.last_run.clone(),
                        runs: e.runs,
                        failures: e.failures,
                        skipped: e.skipped,
                    },
                )
            })
            .collect();
        passes.sort_by_key(|(order, _)| *order);
        StatusAnswer {
            now_ms,
            scheduler: self.scheduler,
            passes: passes.into_iter().map(|(_, p)| p).collect(),
            config: self.config.lock().clone(),
            damaged_segments: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(trigger: RunTrigger, outcome: RunOutcome) -> RunRecord {
        RunRecord {
            trigger,
            started_ms: 1,
            finished_ms: 2,
            duration_ms: 1,
            outcome,
            actions: 0,
            errors: 0,
            message: None,
        }
    }

    #[test]
    fn a_running_job_skips_its_next_fire_and_counts_runs_and_failures() {
        let b = StatusBoard::new(&["gc", "heat"], true, None);
        b.set_next("gc", "* * * * * *", true, Some(5_000));
        assert!(b.try_begin("gc"));
        assert!(!b.try_begin("gc"), "overlap refused");
        assert!(b.try_begin("heat"), "another job is independent");
        b.finish("gc", run(RunTrigger::Schedule, RunOutcome::Failed));
        assert!(b.try_begin("gc"), "free again after the run");
        b.finish("gc", run(RunTrigger::Schedule, RunOutcome::Ok));
        b.finish("gc", run(RunTrigger::Manual, RunOutcome::Ok));
        let a = b.answer(9);
        assert_eq!(a.passes.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["gc", "heat"]);
        let gc = &a.passes[0];
        assert_eq!((gc.runs, gc.failures, gc.skipped, gc.running), (3, 1, 1, false));
        assert_eq!(gc.last_run.as_ref().unwrap().trigger, RunTrigger::Manual);
        assert_eq!(gc.next_run_ms, Some(5_000));
        assert!(a.passes[1].running);
    }
}
