//! The scheduler: one task per scheduled job (the passes, the heat flush), each looping on
//! `clock.sleep_until(next fire + jitter)` (pure schedules: [`tierd_policies::schedule`]) and the shutdown token.
//!
//! - A job never overlaps itself: a fire time that comes while its previous run still goes is skipped and counted.
//!   Passes run through [`super::passes::Passes::run`], which serializes them and draws from the IO budget.
//! - A failed or panicking run is recorded and counted; the job runs again at its next fire time; other jobs never
//!   notice.
//! - A config reload ([`super::reload`]) swaps the schedules; each loop wakes and computes its next fire from the
//!   new ones. A run in flight finishes with the settings it started with.
//! - Shutdown stops the loops, then waits for runs in flight (a [`TaskTracker`]).
//!
//! On a test clock, moving the clock wakes the loops ([`tierd_store::clock::OffsetClock`] wakes sleepers when it
//! moves), so end-to-end tests advance time instead of sleeping.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::FutureExt;
use parking_lot::Mutex;
use tierd_policies::Schedule;
use tierd_store::clock::Stopwatch;
use tierd_store::Clock;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::config::{Config, ConfigError};
use super::reload::LivePasses;
use super::status::StatusBoard;
use crate::api::{PassName, PassRequest, RunOutcome, RunRecord, RunTrigger};

/// What one run of a job did: the number of actions and the errors of the ones that failed. A run with errors is
/// a failed run (it is retried at the next fire time).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct JobReport {
    pub actions: u64,
    pub errors: Vec<String>,
}

/// One run of a job; `Err` when the run failed as a whole.
pub type JobFuture = Pin<Box<dyn Future<Output = Result<JobReport, String>> + Send + 'static>>;

/// A scheduled job: called at each fire time. Register one with [`Scheduler::register`], e.g. the heat flush:
/// `scheduler.register("heat", Arc::new(move || { let h = heat.clone(); Box::pin(async move { ... }) }))`.
/// Blocking work belongs in `spawn_blocking` (or [`super::background::run`]) inside the future.
pub type Job = Arc<dyn Fn() -> JobFuture + Send + Sync>;

/// The schedules in force, swapped whole by a reload.
#[derive(Debug)]
struct Plan {
    schedules: BTreeMap<&'static str, Schedule>,
    jitter_ms: i64,
}

impl Plan {
    fn of(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self { schedules: config.schedules()?.into_iter().collect(), jitter_ms: config.schedule_jitter_ms() })
    }
}

pub struct Scheduler {
    clock: Arc<dyn Clock>,
    board: Arc<StatusBoard>,
    plan: ArcSwap<Plan>,
    /// Bumped by every reload; each loop then recomputes its next fire.
    changed: watch::Sender<u64>,
    jobs: Mutex<BTreeMap<&'static str, Job>>,
    /// `false` under `--no-schedules`: jobs run only by hand.
    enabled: bool,
    started: Mutex<bool>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Scheduler {
    /// A scheduler over `config`'s schedules, without jobs yet ([`Scheduler::register`]); nothing runs before
    /// [`Scheduler::start`]. With `enabled = false` (`--no-schedules`) it only keeps the status board.
    pub fn new(
        clock: Arc<dyn Clock>,
        config: &Config,
        enabled: bool,
        config_path: Option<String>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, ConfigError> {
        let plan = Plan::of(config)?;
        let names: Vec<&str> = plan.schedules.keys().copied().collect();
        let mut order: Vec<&str> = PassName::ALL.iter().map(|p| p.label()).collect();
        order.extend(names.iter().filter(|n| PassName::from_label(n).is_none()));
        let board = Arc::new(StatusBoard::new(&order, enabled, config_path));
        let scheduler = Arc::new(Self {
            clock,
            board,
            plan: ArcSwap::from_pointee(plan),
            changed: watch::Sender::new(0),
            jobs: Mutex::new(BTreeMap::new()),
            enabled,
            started: Mutex::new(false),
            shutdown,
            tracker: TaskTracker::new(),
        });
        scheduler.publish_unscheduled();
        Ok(scheduler)
    }

    pub fn board(&self) -> &Arc<StatusBoard> {
        &self.board
    }

    /// Adds job `name` (its schedule is `[passes.NAME].schedule`); after [`Scheduler::start`] its loop starts at once.
    pub fn register(self: &Arc<Self>, name: &'static str, job: Job) {
        self.jobs.lock().insert(name, job.clone());
        if *self.started.lock() {
            self.spawn_loop(name, job);
        }
    }

    /// Registers a job for each pass of [`PassName::ALL`], run through `passes`.
    pub fn register_passes(self: &Arc<Self>, passes: &Arc<LivePasses>) {
        for pass in PassName::ALL {
            self.register(pass.label(), pass_job(passes.clone(), *pass));
        }
    }

    /// Starts one loop per registered job (nothing under `--no-schedules`).
    pub fn start(self: &Arc<Self>) {
        *self.started.lock() = true;
        let jobs: Vec<_> = self.jobs.lock().iter().map(|(n, j)| (*n, j.clone())).collect();
        for (name, job) in jobs {
            self.spawn_loop(name, job);
        }
    }

    /// Takes `config`'s schedules (already validated by the reload) and wakes every loop.
    pub fn apply(&self, config: &Config) -> Result<(), ConfigError> {
        self.plan.store(Arc::new(Plan::of(config)?));
        self.changed.send_modify(|n| *n += 1);
        self.publish_unscheduled();
        Ok(())
    }

    /// Waits for the loops to stop (the shutdown token) and for runs in flight to finish.
    pub async fn stopped(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Status entries of jobs that no loop keeps up to date: all of them under `--no-schedules`, and schedules
    /// without a registered job.
    fn publish_unscheduled(&self) {
        let plan = self.plan.load();
        let jobs = self.jobs.lock();
        for (name, schedule) in &plan.schedules {
            if !self.enabled || !jobs.contains_key(name) {
                self.board.set_next(name, schedule.expression(), false, None);
            }
        }
    }

    fn spawn_loop(self: &Arc<Self>, name: &'static str, job: Job) {
        if self.enabled {
            self.tracker.spawn(self.clone().job_loop(name, job));
        }
    }

    async fn job_loop(self: Arc<Self>, name: &'static str, job: Job) {
        let mut changed = self.changed.subscribe();
        loop {
            changed.mark_unchanged();
            let plan = self.plan.load_full();
            let schedule = plan.schedules.get(name).cloned().unwrap_or_else(Schedule::disabled);
            let next = schedule.next_run(name, self.clock.now_ms(), plan.jitter_ms);
            self.board.set_next(name, schedule.expression(), next.is_some(), next.map(|n| n.at_ms()));
            if schedule.is_enabled() && next.is_none() {
                warn!(pass = name, schedule = schedule.expression(), "schedule has no fire time left");
            }
            let sleep = match next {
                Some(n) => self.clock.sleep_until(n.at_ms()),
                None => Box::pin(std::future::pending()),
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                moved = changed.changed() => {
                    if moved.is_err() {
                        return;
                    }
                    continue;
                }
                _ = sleep => {}
            }
            if !self.board.try_begin(name) {
                info!(pass = name, "previous run still going: this fire is skipped");
                continue;
            }
            let me = self.clone();
            let run = job();
            self.tracker.spawn(async move { me.run_job(name, RunTrigger::Schedule, run).await });
        }
    }

    /// Runs `run`, records it on the board and in the metrics; a panic is a failed run.
    async fn run_job(&self, name: &str, trigger: RunTrigger, run: JobFuture) {
        let started_ms = self.clock.now_ms();
        let watch = Stopwatch::start();
        let result = std::panic::AssertUnwindSafe(run).catch_unwind().await.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(format!("panicked: {message}"))
        });
        self.record(name, trigger, started_ms, watch, result);
    }

    /// Records a finished run (scheduled or manual) on the board and in the metrics, and logs it.
    pub fn record(
        &self,
        name: &str,
        trigger: RunTrigger,
        started_ms: i64,
        watch: Stopwatch,
        result: Result<JobReport, String>,
    ) {
        let duration_ms = watch.elapsed().as_millis() as u64;
        let (outcome, actions, errors, message) = match &result {
            Ok(r) if r.errors.is_empty() => (RunOutcome::Ok, r.actions, 0, None),
            Ok(r) => (RunOutcome::Failed, r.actions, r.errors.len() as u64, r.errors.first().cloned()),
            Err(e) => (RunOutcome::Failed, 0, 1, Some(e.clone())),
        };
        match outcome {
            RunOutcome::Ok => info!(pass = name, trigger = trigger.label(), actions, duration_ms, "run finished"),
            _ => error!(pass = name, trigger = trigger.label(), actions, errors, message = ?message, duration_ms,
                "run failed; retried at its next fire time"),
        }
        let finished_ms = self.clock.now_ms();
        self.board.finish(
            name,
            RunRecord { trigger, started_ms, finished_ms, duration_ms, outcome, actions, errors, message },
        );
    }
}

/// The job of pass `pass`: a real run over every project, on a background thread, with the passes' settings of
/// the moment it starts.
fn pass_job(passes: Arc<LivePasses>, pass: PassName) -> Job {
    Arc::new(move || {
        let passes = passes.clone();
        Box::pin(async move {
            let report = passes
                .in_background("tierd-pass", move |p| p.run_scheduled(pass, &PassRequest::default()))
                .await
                .map_err(|e| e.to_string())?;
            Ok(JobReport { actions: report.actions.len() as u64, errors: report.errors })
        })
    })
}

/// The `heat` job: persists read heat and moves it to rewrites' outputs ([`tierd_store::HeatTracker::flush`]).
fn heat_job(heat: Arc<tierd_store::HeatTracker>) -> Job {
    Arc::new(move || {
        let heat = heat.clone();
        Box::pin(async move {
            let report = flush_heat(heat).await?;
            Ok(JobReport { actions: (report.written + report.carried + report.dropped) as u64, errors: Vec::new() })
        })
    })
}

/// One heat flush on the blocking pool (it reads the catalog and writes one sled batch).
pub async fn flush_heat(heat: Arc<tierd_store::HeatTracker>) -> Result<tierd_store::heat::FlushReport, String> {
    match tokio::task::spawn_blocking(move || heat.flush()).await {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the heat flush stopped: {e}")),
    }
}

#[cfg(test)]
mod tests;

/// The passes, their scheduler and the reloader, built together from `config` (what `tierd serve` and the HTTP
/// tests set up). `scheduled = false` is `--no-schedules`. Call from inside the tokio runtime.
pub struct Control {
    pub passes: Arc<LivePasses>,
    pub scheduler: Arc<Scheduler>,
    pub reloader: Arc<super::reload::Reloader>,
}

/// What the passes read besides the store: read heat (the planners' input) and the deletion requests (the
/// `deletions` pass's work), both also served by the HTTP API.
pub struct PassInputs {
    pub heat: Arc<tierd_store::HeatTracker>,
    pub deletions: Arc<tierd_store::DeletionLog>,
    /// The queries' cold cache (gc drops the blocks of what it deletes); none: no cache.
    pub cache: Option<Arc<tierd_store::BlockCache>>,
}

impl Control {
    pub fn new(
        ctx: tierd_store::StoreContext,
        config: &Config,
        scheduled: bool,
        config_path: Option<std::path::PathBuf>,
        overrides: (Option<std::path::PathBuf>, Option<String>),
        shutdown: CancellationToken,
        inputs: PassInputs,
    ) -> Result<Self, ConfigError> {
        let PassInputs { heat, deletions, cache } = inputs;
        let clock = ctx.clock.clone();
        let passes = Arc::new(LivePasses::new(
            ctx,
            config.clone(),
            Some(heat.clone()),
            Some(deletions),
            cache,
            shutdown.clone(),
        ));
        let shown_path = config_path.as_ref().map(|p| p.display().to_string());
        let scheduler = Scheduler::new(clock.clone(), config, scheduled, shown_path, shutdown)?;
        scheduler.register_passes(&passes);
        scheduler.register("heat", heat_job(heat));
        let reloader = Arc::new(super::reload::Reloader::new(
            config_path,
            overrides,
            config.clone(),
            passes.clone(),
            scheduler.clone(),
            clock,
        ));
        Ok(Self { passes, scheduler, reloader })
    }
}
