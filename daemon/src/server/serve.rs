//! `tierd serve`: start-up, background tasks and ordered shutdown.
//!
//! Start-up order: configuration -> logging and metrics -> IO budget and cold tier (a bad `cold.url` stops here) ->
//! catalog -> crash recovery (the catalog and the hot directory agree before anything is served) -> hot writer ->
//! cold cache (its index rebuilt from `DATA_DIR/cache`) -> HTTP -> scheduler (unless `--no-schedules`). The ready
//! line `tierd listening on http://ADDR` goes to stdout only after all of that. SIGHUP reloads the configuration
//! file ([`super::reload`]).
//! Shutdown (SIGTERM, SIGINT, or a fatal store error): stop accepting requests and scheduling runs, wait for runs in
//! flight, let the hot writer answer what it queued and seal its open segments, flush the catalog.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tierd_store::clock::OffsetClock;
use tierd_store::hot::HotTier;
use tierd_store::layout::Layout;
use tierd_store::{
    BlockCache, Catalog, Clock, ColdStore, Failpoints, FaultConfig, IoBudget, SegmentSource, StoreContext, SystemClock,
};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::config::Config;
use super::http::{router, AppState};

/// How often expired leases are pruned and catalog gauges refreshed.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10);

/// Set (to a number of milliseconds, 0 or more) only by end-to-end tests: the daemon then runs on an
/// [`OffsetClock`] that far ahead of the wall clock, moved by `POST /v1/admin/test/clock`.
const TEST_CLOCK_ENV: &str = "TIERD_TEST_CLOCK_OFFSET_MS";

/// `tierd serve`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML config file; every key is optional (see tierd.example.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the config's `data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Listen address (overrides the config's `listen`); port 0 picks a free port.
    #[arg(long)]
    pub listen: Option<String>,
    /// Run passes only when asked (`tierd pass run`), never on their schedules; `GET /v1/status` still shows them.
    /// For tests that drive passes by hand, and for maintenance.
    #[arg(long)]
    pub no_schedules: bool,
}

/// What `serve` needs of the command line besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Scheduled runs on (`false` = `--no-schedules`).
    pub schedules: bool,
    /// The file a reload reads again.
    pub config_path: Option<PathBuf>,
    /// `--data-dir` and `--listen`, applied to reloaded files too.
    pub overrides: (Option<PathBuf>, Option<String>),
}

pub fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(l) = &args.listen {
        config.listen = l.clone();
    }
    config.validate()?;
    Ok(config)
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    init_logging(&config.log.level);
    let metrics = super::metrics::install()?;
    super::fds::ensure(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("tierd").build()?;
    let options = ServeOptions {
        schedules: !args.no_schedules,
        config_path: args.config.clone(),
        overrides: (args.data_dir.clone(), args.listen.clone()),
    };
    runtime.block_on(serve(config, Some(metrics), options))
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

pub async fn serve(
    config: Config,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    options: ServeOptions,
) -> anyhow::Result<()> {
    let (clock, test_clock) = clock_from_env()?;
    // Secrets are read once, at start: a missing file or variable stops the start, naming the key (never a secret).
    let credentials = super::http::auth::Credentials::resolve(&config.projects, &|var| std::env::var(var).ok())
        .map_err(|(key, message)| anyhow::anyhow!("config key `{key}`: {message}"))?;
    let layout = Layout::new(&config.data_dir);
    std::fs::create_dir_all(layout.root())
        .with_context(|| format!("cannot create data_dir {}", layout.root().display()))?;
    let access = access_tokens(&config, &layout, &credentials)?;
    // TLS files are read before anything is recovered or opened: a bad path stops the start at once.
    let tls = super::http::tls::acceptor(&config.http)?;
    // Before the catalog opens: sled cannot open on a full disk, so a full disk gives the ballast back.
    tierd_store::space::keep_ballast(layout.root(), config.catalog.min_free_bytes)
        .with_context(|| format!("cannot keep the emergency ballast in {}", layout.root().display()))?;
    let budget = Arc::new(IoBudget::new(&config.budget));
    let cold = Arc::new(open_cold(&config, budget.clone())?);
    let catalog = Arc::new(open_catalog(&layout, &cold).await?);
    // Before recovery: on a full disk, recovery's commits wait rather than meet ENOSPC inside sled.
    catalog.set_min_free_bytes(config.catalog.min_free_bytes);
    let failpoints = Arc::new(match std::env::var("TIERD_FAILPOINTS") {
        Ok(spec) => Failpoints::parse(&spec).map_err(|e| anyhow::anyhow!("TIERD_FAILPOINTS: {e}"))?,
        Err(_) => Failpoints::none(),
    });
    let ctx = StoreContext::new(
        layout.clone(),
        catalog.clone(),
        clock.clone(),
        failpoints,
        cold.clone(),
        tokio::runtime::Handle::current(),
    )
    // Bad copies recovery, the scrub, reads and repairs find, and segments with no good copy (in `/v1/status`).
    .with_repairs(Arc::new(tierd_store::repair::RepairQueue::new(config.passes.max_pending_repairs)));
    // Recovery is blocking I/O (and drives the object store through the runtime to delete uncommitted cold copies).
    let report = {
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || tierd_store::recovery::recover(&ctx))
            .await
            .context("crash recovery stopped")?
            .context("crash recovery failed")?
    };
    if !report.missing.is_empty() || !report.corrupt.is_empty() {
        error!(
            missing = ?report.missing,
            corrupt = ?report.corrupt,
            "segments the catalog needs are missing or corrupt; queries touching them will fail"
        );
    }
    let shutdown = CancellationToken::new();
    let fatal = Arc::new(Fatal::default());
    let hot = {
        let shutdown = shutdown.clone();
        let fatal = fatal.clone();
        Arc::new(HotTier::start(
            &ctx,
            config.hot_config(),
            Arc::new(move |why| {
                fatal.set(why);
                shutdown.cancel();
            }),
        )?)
    };
    // Read heat, loaded from the catalog's `heat` tree; flushed on the `heat` schedule (by housekeeping under
    // `--no-schedules`) and at shutdown.
    let heat = Arc::new(
        tierd_store::HeatTracker::open(catalog.clone(), clock.clone(), config.heat_config()?)
            .context("cannot load read heat from the catalog")?,
    );
    // Deletion requests, from the catalog's `deletions` tree: their tombstones apply to the first read served.
    let deletions = Arc::new(
        tierd_store::DeletionLog::open(catalog.clone()).context("cannot load deletion requests from the catalog")?,
    );
    let cache = Arc::new(
        BlockCache::open(&layout.cache_dir(), &config.cache)
            .with_context(|| format!("cannot open the cold cache in {}", layout.cache_dir().display()))?,
    );
    // Background writers (and cache fills) stop before ingest's reserve is touched.
    let background_reserve = config.hot.min_free_bytes.saturating_add(config.passes.disk_reserve_bytes);
    cache.set_disk_reserve(background_reserve);
    let ctx = ctx.with_disk_reserve(background_reserve);
    let scrub_ctx = ctx.clone();
    let control = super::schedule::Control::new(
        ctx,
        &config,
        options.schedules,
        options.config_path.clone(),
        options.overrides.clone(),
        shutdown.clone(),
        super::schedule::PassInputs { heat: heat.clone(), deletions: deletions.clone(), cache: Some(cache.clone()) },
    )?;
    // Queries never wait behind background work: the foreground store, without the IO budget.
    let reads =
        SegmentSource::new(layout.clone(), Arc::new(cold.foreground()), cache, tokio::runtime::Handle::current())
            .with_repairs(scrub_ctx.repairs.clone())
            .with_footers(Arc::new(tierd_store::read::FooterCache::new(config.cache.footer_max_bytes)));
    let state = Arc::new(AppState {
        queries: Arc::new(super::http::QueryGate::new(config.query.max_total_memory_bytes)),
        leases: Arc::new(tierd_store::catalog::LeaseGrants::new(config.catalog.max_live_leases)),
        deletions,
        heat: heat.clone(),
        reads,
        layout: layout.clone(),
        catalog: catalog.clone(),
        hot: hot.clone(),
        clock: clock.clone(),
        limits: config.ingest.batch_limits(),
        ingest: super::http::IngestGate::new(&config.ingest, config.hot.max_open_segments),
        track: super::http::TrackSettings::new(&config),
        credentials: Arc::new(credentials),
        access: Arc::new(access),
        lease_ttl_ms: (config.catalog.lease_ttl_secs as i64).saturating_mul(1000),
        metrics,
        passes: control.passes.clone(),
        scheduler: control.scheduler.clone(),
        reloader: control.reloader.clone(),
        cold,
        budget,
    });
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    // Signal handlers first: a signal sent once the daemon says it is ready is handled, never the default action.
    let (stop_signals, hup) = (listen_for_shutdown(), super::reload::listen_for_sighup());
    info!(%addr, tls = tls.is_some(), data_dir = %layout.root().display(), generation = catalog.snapshot().generation(), "tierd ready");
    {
        let mut out = std::io::stdout().lock();
        let scheme = if tls.is_some() { "https" } else { "http" };
        writeln!(out, "tierd listening on {scheme}://{addr}")?;
        out.flush()?;
    }
    // Under `--no-schedules` nothing flushes heat on a schedule; housekeeping does, so reads still persist and
    // rewrites still carry them.
    let unscheduled_heat = (!options.schedules).then(|| heat.clone());
    let housekeeping = tokio::spawn(housekeeping(
        catalog.clone(),
        unscheduled_heat,
        clock.clone(),
        (layout.root().to_path_buf(), config.catalog.min_free_bytes),
        shutdown.clone(),
    ));
    // Sealed hot segments were only length-checked by recovery: verify their bytes now, in the background, at the
    // passes' CPU priority and through the IO budget (see `tierd_store::scrub`).
    let scrub = {
        let ctx = scrub_ctx;
        let nice = config.passes.nice;
        tokio::spawn(async move {
            if let Err(e) =
                super::background::run("tierd-scrub", nice, move || tierd_store::scrub::scrub_hot(&ctx)).await
            {
                warn!(error = %e, "the start-up scrub did not finish");
            }
        })
    };
    let signals = tokio::spawn(wait_for_signal(stop_signals, shutdown.clone()));
    let reloads = tokio::spawn(super::reload::on_sighup(hup, control.reloader.clone(), shutdown.clone()));
    if options.schedules {
        control.scheduler.start();
        info!("scheduler started");
    } else {
        warn!("--no-schedules: passes run only when asked");
    }
    super::http::listen::serve(listener, router(state, test_clock), config.http.clone(), tls, shutdown.clone()).await;
    shutdown.cancel();
    signals.abort();
    scrub.abort();
    reloads.abort();
    let _ = housekeeping.await;
    // Runs in flight finish (their passes commit or leave nothing behind) before the hot writer stops.
    control.scheduler.stopped().await;
    hot.shutdown().await;
    // The reads counted since the last housekeeping flush (in one batch; a crash before here loses only those).
    flush_heat(&heat).await;
    catalog.flush()?;
    info!("tierd stopped");
    if let Some(why) = fatal.get() {
        anyhow::bail!("stopped after a fatal store error: {why}");
    }
    Ok(())
}

/// The system clock; or, when the process started with `TIERD_TEST_CLOCK_OFFSET_MS=N`, the test clock N ms ahead
/// of it, also returned for the route that moves it. Like failpoints, only the environment turns it on, never a
/// configuration key, so a production configuration cannot.
pub(crate) fn clock_from_env() -> anyhow::Result<(Arc<dyn Clock>, Option<OffsetClock>)> {
    let spec = match std::env::var(TEST_CLOCK_ENV) {
        Ok(spec) => spec,
        Err(std::env::VarError::NotPresent) => return Ok((Arc::new(SystemClock), None)),
        Err(e) => anyhow::bail!("{TEST_CLOCK_ENV}: {e}"),
    };
    let offset_ms: u64 = spec
        .trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("{TEST_CLOCK_ENV}={spec:?}: {e} (give a number of milliseconds, 0 or more)"))?;
    let clock = OffsetClock::new(offset_ms);
    warn!(
        offset_ms,
        "TEST CLOCK ON ({TEST_CLOCK_ENV} is set): time is the wall clock plus an offset that POST \
         /v1/admin/test/clock moves forward; this is for tests only, never run a real daemon like this"
    );
    Ok((Arc::new(clock.clone()), Some(clock)))
}

/// Opens the catalog, refusing to start on one that cannot be opened (damaged sled files) or that was lost (an
/// empty catalog over segment files, which recovery would otherwise quarantine and gc treat as orphans): the error
/// names the command that rebuilds it from the segment files.
async fn open_catalog(layout: &Layout, cold: &ColdStore) -> anyhow::Result<Catalog> {
    let dir = layout.catalog_dir();
    let rebuild = || {
        format!(
            "stop tierd and rebuild the catalog from the segment files with `tierd catalog rebuild --data-dir {}` \
             (add --config FILE if the daemon runs with one: the cold tier is read too)",
            layout.root().display()
        )
    };
    let catalog = match Catalog::open(&dir) {
        Ok(c) => c,
        Err(e) if tierd_store::rebuild::is_locked(&e) => {
            return Err(anyhow::Error::new(e)).with_context(|| {
                format!("cannot open the catalog in {}: another tierd is running on this data directory", dir.display())
            })
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)).with_context(|| {
                format!("cannot open the catalog in {}; if its files are damaged, {}", dir.display(), rebuild())
            })
        }
    };
    if catalog.snapshot().generation() == 0 {
        let found = tierd_store::rebuild::segments_without_catalog(layout, cold)
            .await
            .context("cannot check the data directory for segments the empty catalog does not know")?;
        if let Some(found) = found {
            anyhow::bail!(
                "the catalog in {} is empty, but {found}: the catalog was lost or damaged; {}",
                dir.display(),
                rebuild()
            );
        }
    }
    Ok(catalog)
}

/// Opens the cold tier (with the faults of `TIERD_COLD_FAULTS`, for tests) and logs where it is. Makes no request.
fn open_cold(config: &Config, budget: Arc<IoBudget>) -> anyhow::Result<ColdStore> {
    let faults = match std::env::var("TIERD_COLD_FAULTS") {
        Ok(spec) => Some(FaultConfig::parse(&spec).map_err(|e| anyhow::anyhow!("TIERD_COLD_FAULTS: {e}"))?),
        Err(_) => None,
    };
    let cold = ColdStore::open(&config.cold, &config.data_dir, budget, faults)
        .context("cannot open the cold tier (check the [cold] section of the configuration)")?;
    info!(cold = cold.url(), budget = ?config.budget, "cold tier");
    Ok(cold)
}

/// The SIGTERM and SIGINT listeners, installed before the daemon says it is ready (so that either, from then on,
/// shuts it down in order rather than ending it where it stands).
fn listen_for_shutdown() -> Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)> {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(term), Ok(int)) => Some((term, int)),
        (Err(e), _) | (_, Err(e)) => {
            warn!(error = %e, "cannot listen for SIGTERM/SIGINT");
            None
        }
    }
}

async fn wait_for_signal(
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
    shutdown: CancellationToken,
) {
    let Some((mut term, mut int)) = signals else { return };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = int.recv() => info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}

/// Persists read heat (one batch, one fsync) off the runtime's threads; a failure is logged and counted, the
/// counts stay in memory for the next flush.
async fn flush_heat(heat: &Arc<tierd_store::HeatTracker>) {
    if let Err(e) = super::schedule::flush_heat(heat.clone()).await {
        error!(error = %e, "cannot persist read heat; retried at the next flush");
    }
}

/// Prunes expired leases, refreshes catalog gauges, makes the emergency ballast again once space is back and
/// persists read heat, every [`HOUSEKEEPING_EVERY`] of the clock's time (a test clock drives it by moving). Heat
/// is flushed here only when given (`--no-schedules`; otherwise the scheduler's `heat` job flushes it).
async fn housekeeping(
    catalog: Arc<Catalog>,
    heat: Option<Arc<tierd_store::HeatTracker>>,
    clock: Arc<dyn Clock>,
    ballast: (std::path::PathBuf, u64),
    shutdown: CancellationToken,
) {
    loop {
        let next = clock.now_ms().saturating_add(HOUSEKEEPING_EVERY.as_millis() as i64);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = clock.sleep_until(next) => {}
        }
        match catalog.prune_leases(clock.now_ms()) {
            Ok(n) if n > 0 => tracing::debug!(pruned = n, "expired leases pruned"),
            Ok(_) => {}
            Err(e) => error!(error = %e, "cannot prune leases"),
        }
        super::metrics::publish_catalog(&catalog.snapshot());
        if ballast.1 > 0 {
            let (root, bytes) = ballast.clone();
            match tokio::task::spawn_blocking(move || tierd_store::space::remake_ballast(&root, bytes)).await {
                Ok(Ok(held)) => metrics::gauge!("tierd_emergency_ballast_bytes").set(held as f64),
                Ok(Err(e)) => error!(error = %e, "cannot make the emergency ballast again"),
                Err(e) => error!(error = %e, "the ballast task failed"),
            }
        }
        if let Some(heat) = &heat {
            flush_heat(heat).await;
        }
    }
}

/// The first fatal error, kept for the exit status.
#[derive(Default)]
struct Fatal(std::sync::Mutex<Option<String>>);

impl Fatal {
    fn set(&self, why: String) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.get_or_insert(why);
    }

    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The bearer tokens of the query and admin API: the configured ones and, listening on loopback, the data
/// directory's admin token (written on first start). Listening elsewhere needs credentials for every door: refused
/// at start without them, saying what to set.
fn access_tokens(
    config: &Config,
    layout: &Layout,
    credentials: &super::http::auth::Credentials,
) -> anyhow::Result<super::http::access::AccessTokens> {
    use super::http::access::{admin_token, AccessTokens};
    let loopback = config.listen.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
    let admin = if loopback { Some(admin_token(layout.root())?) } else { None };
    let env = |var: &str| std::env::var(var).ok();
    let access = AccessTokens::resolve(&config.access_tokens, admin, config.http.metrics_need_token, &env)
        .map_err(|(key, message)| anyhow::anyhow!("config key `{key}`: {message}"))?;
    if !loopback && (!access.configured() || !credentials.import_needs_credentials()) {
        anyhow::bail!(
            "listen = {:?} is not a loopback address, and anyone who can reach it could then write, read and \
             administer: set [[access_tokens]] (role \"admin\" or \"query\") for the query and admin API, and a \
             secret or service_accounts in [[projects]] for /import (see tierd.example.toml); or listen on \
             127.0.0.1",
            config.listen
        );
    }
    if !loopback && config.http.tls_cert_file.is_none() {
        warn!(
            listen = %config.listen,
            "serving plain HTTP on a non-loopback address: /import secrets and bearer tokens cross the network in \
             clear text; set http.tls_cert_file and http.tls_key_file, or put a TLS proxy in front"
        );
    }
    Ok(access)
}
