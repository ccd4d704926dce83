//! Configuration reloads (SIGHUP, `POST /v1/admin/config/reload`): read the file again, parse and validate it, and
//! apply it whole or not at all.
//!
//! What a reload changes: the schedules and jitter ([`super::schedule`]) and every pass setting (planners, rewrite
//! layout, gc), by building new [`Passes`] and swapping them in ([`LivePasses`], arc-swap): a pass already running
//! keeps the `Passes`, and so the settings, it started with. What it cannot change: the keys listed by
//! [`Config::restart_only_changes`] (data_dir, listen, hot.*, cold.*, cache.*, ...), opened once at start-up; a file
//! that changes any of them is refused with their names, as is a file that does not parse or validate. A refused
//! reload leaves the old configuration in force, is logged, counted (`tierd_config_reloads_total{outcome}`) and
//! shown in `GET /v1/status`.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tierd_store::{Clock, StoreContext};
use tracing::{info, warn};

use super::config::Config;
use super::error::ServerError;
use super::passes::Passes;
use super::schedule::Scheduler;
use crate::api::{ReloadOutcome, ReloadRecord};

/// The passes with the settings in force; a reload swaps them.
pub struct LivePasses {
    ctx: StoreContext,
    current: ArcSwap<Passes>,
}

impl LivePasses {
    pub fn new(
        ctx: StoreContext,
        config: Config,
        heat: Option<Arc<tierd_store::HeatTracker>>,
        deletions: Option<Arc<tierd_store::DeletionLog>>,
        cache: Option<Arc<tierd_store::BlockCache>>,
        stopping: tokio_util::sync::CancellationToken,
    ) -> Self {
        let passes =
            Passes::new(ctx.clone(), config, cache).with_heat(heat).with_deletions(deletions).with_stopping(stopping);
        Self { ctx, current: ArcSwap::from_pointee(passes) }
    }

    /// The passes in force now (a run holds on to them until it ends).
    pub fn current(&self) -> Arc<Passes> {
        self.current.load_full()
    }

    /// [`Passes::in_background`] on the passes in force now.
    pub async fn in_background<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce(&Passes) -> T + Send + 'static,
    ) -> Result<T, ServerError> {
        self.current().in_background(name, f).await
    }

    /// Swaps in passes with `config`'s settings. Call from inside the tokio runtime.
    fn replace(&self, config: Config) {
        let next = self.current().reconfigured(self.ctx.clone(), config);
        self.current.store(Arc::new(next));
    }
}

/// Reloads the configuration file; see the module doc.
pub struct Reloader {
    /// The file; `None` when the daemon started without `--config`.
    path: Option<PathBuf>,
    /// What the command line overrode (`--data-dir`, `--listen`): applied to every reloaded file too.
    overrides: (Option<PathBuf>, Option<String>),
    config: Mutex<Config>,
    passes: Arc<LivePasses>,
    scheduler: Arc<Scheduler>,
    clock: Arc<dyn Clock>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(
        path: Option<PathBuf>,
        overrides: (Option<PathBuf>, Option<String>),
        config: Config,
        passes: Arc<LivePasses>,
        scheduler: Arc<Scheduler>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            path,
            overrides,
            config: Mutex::new(config),
            passes,
            scheduler,
            clock,
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// Reads, checks and applies the file; the record says what happened (also on the status board).
    pub async fn reload(&self) -> ReloadRecord {
        let _one = self.reloading.lock().await;
        let at_ms = self.clock.now_ms();
        let record = match self.try_reload().await {
            Ok(message) => {
                info!(%message, "configuration reloaded");
                ReloadRecord { at_ms, outcome: ReloadOutcome::Applied, message }
            }
            Err(message) => {
                warn!(%message, "configuration reload refused; the old configuration stays");
                ReloadRecord { at_ms, outcome: ReloadOutcome::Refused, message }
            }
        };
        self.scheduler.board().reloaded(record.clone());
        record
    }

    async fn try_reload(&self) -> Result<String, String> {
        let Some(path) = self.path.clone() else {
            return Err("the daemon was started without --config: there is no file to reload".into());
        };
        let read = tokio::task::spawn_blocking(move || Config::load(&path)).await;
        let mut new = read.map_err(|e| format!("reading the file stopped: {e}"))?.map_err(|e| e.to_string())?;
        if let Some(d) = &self.overrides.0 {
            new.data_dir = d.clone();
        }
        if let Some(l) = &self.overrides.1 {
            new.listen = l.clone();
        }
        new.validate().map_err(|e| e.to_string())?;
        let old = self.config.lock().clone();
        let fixed = old.restart_only_changes(&new);
        if !fixed.is_empty() {
            return Err(format!(
                "changes {} which take a restart; nothing was applied (restart tierd, or put back the old values)",
                fixed.join(", ")
            ));
        }
        if new == old {
            return Ok("no change".into());
        }
        let schedules_changed = old.schedules().ok() != new.schedules().ok()
            || old.passes.schedule_jitter_secs != new.passes.schedule_jitter_secs;
        self.scheduler.apply(&new).map_err(|e| e.to_string())?;
        self.passes.replace(new.clone());
        *self.config.lock() = new;
        Ok(if schedules_changed { "applied: schedules and pass settings" } else { "applied: pass settings" }.into())
    }
}

/// The SIGHUP listener, installed before the daemon says it is ready: from then on a SIGHUP reloads instead of
/// ending the process (the default action of an unhandled SIGHUP).
pub fn listen_for_sighup() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(hup) => Some(hup),
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGHUP; reload with POST /v1/admin/config/reload");
            None
        }
    }
}

/// Reloads on every SIGHUP (from [`listen_for_sighup`]) until `shutdown`.
pub async fn on_sighup(
    hup: Option<tokio::signal::unix::Signal>,
    reloader: Arc<Reloader>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let Some(mut hup) = hup else { return };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = hup.recv() => {
                if got.is_none() {
                    return;
                }
                info!("SIGHUP: reloading the configuration");
                reloader.reload().await;
            }
        }
    }
}
