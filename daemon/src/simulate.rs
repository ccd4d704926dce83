//! `tierd simulate`: replays a workload through the placement policies offline and prints what each would cost
//! and how fast reads would be, side by side (`policies::simulate` does the work; this is the command line).
//!
//! The workload is generated (`--days`, `--seed`, `[simulate.workload]`) or read from a recorded access log
//! (`--access-log FILE`, NDJSON, see `tierd_policies::simulate::accesslog`). `--config FILE` is the daemon's config
//! file: the `tierd` scenario runs exactly the policy the daemon would (the recompress ladder, `[policy]` and its
//! rules, `passes.migrate`), priced with `[cost]`; the ingest codec (`passes.reencode.codec`), the cache bound
//! (`cache.max_bytes`) and `[simulate]` come from it too. Nothing touches a data directory or a running daemon.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use tierd_policies::simulate::{self, Report, Scenario, TierdPolicy};

use crate::server::config::Config;

/// `tierd simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Print the report as JSON (`{"scenarios":[...]}`) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Measured days of generated workload (default: `simulate.workload.days`, 30). Not with --access-log.
    #[arg(long, conflicts_with = "access_log")]
    pub days: Option<u32>,
    /// Days of generated history before the measured window, left out of the figures (default:
    /// `simulate.workload.history_days`, 90). Not with --access-log.
    #[arg(long, conflicts_with = "access_log")]
    pub history_days: Option<u32>,
    /// Seed of the generated workload: the same seed gives the same workload and report.
    #[arg(long, default_value_t = 1, conflicts_with = "access_log")]
    pub seed: u64,
    /// Replay this recorded access log (NDJSON) instead of a generated workload.
    #[arg(long)]
    pub access_log: Option<PathBuf>,
    /// The daemon's config file (TOML): ladder, codec, cache bound and `[simulate]`.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let report = report(&args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

/// The report `args` ask for.
pub fn report(args: &SimulateArgs) -> anyhow::Result<Report> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let mut sim = config.simulate.clone();
    sim.ingest_codec = config.passes.reencode.codec.clone();
    sim.cache_max_bytes = config.cache.max_bytes;
    // The planner sees the heat the daemon would give it, unless `[simulate]` says otherwise.
    sim.heat_half_life_ms
        .get_or_insert(i64::try_from(config.heat.half_life_secs).unwrap_or(i64::MAX).saturating_mul(1000));
    if let Some(days) = args.days {
        sim.workload.days = days;
    }
    if let Some(days) = args.history_days {
        sim.workload.history_days = days;
    }
    sim.validate().context("invalid [simulate] configuration")?;
    let workload = match &args.access_log {
        Some(path) => {
            let size = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
            if size > sim.max_workload_bytes {
                bail!(
                    "{} is {size} bytes, more than simulate.max_workload_bytes ({}): replay a shorter log or raise \
                     the limit",
                    path.display(),
                    sim.max_workload_bytes
                );
            }
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            simulate::accesslog::parse(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => {
            sim.check_generated_size().context("invalid [simulate] configuration")?;
            simulate::generate(&sim.workload, args.seed)?
        }
    };
    let prices = config.prices();
    let tiering = config.tiering_policy();
    tiering.validate().context("invalid [policy]")?;
    // The baseline runs on the same store as tierd: with its recompress ladder unless `recompress = false`.
    let mut age_only = sim.age_only.clone();
    age_only.ladder = age_only.recompress.then(|| config.recompress_planner());
    let scenarios = [
        Scenario::AllHot,
        Scenario::AgeOnly(age_only),
        Scenario::Tierd(Box::new(TierdPolicy {
            recompress: config.recompress_planner(),
            tiering,
            hot_capacity_bytes: 0,
        })),
    ];
    Ok(simulate::simulate(&workload, &scenarios, &sim, &prices)?)
}

/// The side-by-side table: one row per figure, one column per scenario.
pub fn table(report: &Report) -> String {
    let usd = |v: f64| format!("${v:.2}");
    let ms = |v: f64| format!("{v:.1} ms");
    let gib = |v: u64| format!("{:.1} GiB", v as f64 / (1u64 << 30) as f64);
    let n = |v: u64| v.to_string();
    type Cell = Box<dyn Fn(&simulate::ScenarioReport) -> String>;
    let rows: Vec<(&str, Cell)> = vec![
        ("monthly cost (end state)", Box::new(move |s| usd(s.monthly_cost))),
        ("total cost over the run", Box::new(move |s| usd(s.total_cost))),
        ("  storage", Box::new(move |s| usd(s.storage_cost))),
        ("  moves and rewrites", Box::new(move |s| format!("${:.4}", s.transition_cost))),
        ("  cold reads", Box::new(move |s| format!("${:.4}", s.read_cost))),
        ("read p50", Box::new(move |s| ms(s.p50_read_ms))),
        ("read p99", Box::new(move |s| ms(s.p99_read_ms))),
        (
            "segment reads hot/cache/cold",
            Box::new(|s| format!("{}/{}/{}", s.segment_reads_hot, s.segment_reads_cache, s.segment_reads_cold)),
        ),
        ("bytes moved", Box::new(move |s| gib(s.bytes_moved))),
        ("bytes rewritten", Box::new(move |s| gib(s.bytes_rewritten))),
        ("object-store requests", Box::new(move |s| n(s.requests))),
        ("moves / recompressions", Box::new(|s| format!("{} / {}", s.moves, s.recompressions))),
        ("end bytes hot", Box::new(move |s| gib(s.end_bytes_hot))),
        (
            "end bytes cold (+ infrequent)",
            Box::new(move |s| format!("{} (+{})", gib(s.end_bytes_cold), gib(s.end_bytes_cold_infrequent))),
        ),
    ];
    let width = 32;
    let mut out = format!(
        "{:.1} days measured after {:.1} days of history, {} segments, {} reads ({} of data not yet sealed, left \
         out)\n\n{:width$}",
        report.days, report.history_days, report.segments, report.reads, report.unserved_reads, ""
    );
    for s in &report.scenarios {
        out.push_str(&format!("{:>21}", s.name));
    }
    out.push('\n');
    for (label, cell) in &rows {
        out.push_str(&format!("{label:width$}"));
        for s in &report.scenarios {
            out.push_str(&format!("{:>21}", cell(s)));
        }
        out.push('\n');
    }
    if let (Some(hot), Some(age), Some(tierd)) = (
        report.scenarios.iter().find(|s| s.name == "all-hot"),
        report.scenarios.iter().find(|s| s.name == "age-only"),
        report.scenarios.iter().find(|s| s.name == "tierd"),
    ) {
        let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.3}x", a / b) } else { "-".into() };
        out.push_str(&format!(
            "\ntierd monthly cost: {} of all-hot, {} of age-only; total cost: {} of all-hot, {} of age-only\n",
            ratio(tierd.monthly_cost, hot.monthly_cost),
            ratio(tierd.monthly_cost, age.monthly_cost),
            ratio(tierd.total_cost, hot.total_cost),
            ratio(tierd.total_cost, age.total_cost),
        ));
    }
    out
}
