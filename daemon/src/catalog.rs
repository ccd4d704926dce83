//! `tierd catalog rebuild --data-dir DIR [--config FILE] [--force] [--json]`: writes a stopped node's catalog anew
//! from its segment files (the hot directory and the cold tier of the configuration) and prints what it found.
//! The work is `tierd_store::rebuild`'s; this module reads the configuration, opens the cold tier and prints.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use tierd_store::layout::Layout;
use tierd_store::rebuild::RebuildReport;
use tierd_store::{ColdStore, IoBudget};

use crate::server::config::Config;

#[derive(Debug, clap::Args)]
pub struct CatalogArgs {
    #[command(subcommand)]
    pub command: CatalogCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CatalogCommand {
    /// Rebuild the catalog of a stopped daemon from its segment files (hot directory and cold tier). The old
    /// catalog directory is kept as `catalog.broken-<ms>`; unusable files go to quarantine, never deleted.
    Rebuild(RebuildArgs),
}

#[derive(Debug, clap::Args)]
pub struct RebuildArgs {
    /// Data directory of the stopped daemon (overrides the config's `data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// TOML config file of the daemon: its `[cold]` section says where the cold tier is.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Rebuild even though the catalog still opens with records in it (its deletion requests, leases and heat are
    /// then lost).
    #[arg(long)]
    pub force: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: CatalogArgs) -> anyhow::Result<()> {
    match args.command {
        CatalogCommand::Rebuild(args) => rebuild(args),
    }
}

fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    config.validate()?;
    let layout = Layout::new(config.data_dir.clone());
    if !layout.root().is_dir() {
        bail!(
            "no data directory at {}: give the data directory of a tierd daemon (--data-dir)",
            layout.root().display()
        );
    }
    let (clock, _) = crate::server::serve::clock_from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime for the cold tier")?;
    // Offline work: the cold tier without the IO budget, read whole.
    let cold = {
        let _in_runtime = runtime.enter();
        let budget = Arc::new(IoBudget::new(&config.budget));
        ColdStore::open(&config.cold, &config.data_dir, budget, None)
            .context("cannot open the cold tier (check the [cold] section of the configuration)")?
            .foreground()
    };
    let report = tierd_store::rebuild::rebuild(&layout, &cold, runtime.handle(), clock.as_ref(), args.force)
        .with_context(|| format!("cannot rebuild the catalog of {}", layout.root().display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", describe(&report, cold.url()));
    }
    Ok(())
}

/// The report for a person.
pub fn describe(r: &RebuildReport, cold_url: &str) -> String {
    let mut out = String::new();
    let kept = r.old_catalog.as_ref().map_or("there was none".to_string(), |p| format!("kept in {}", p.display()));
    let _ = writeln!(
        out,
        "catalog rebuilt in {} (generation {}); the old catalog: {kept}",
        r.catalog.display(),
        r.generation
    );
    let _ = writeln!(out, "files read: {} hot, {} cold ({cold_url})", r.hot_files, r.cold_objects);
    let list = |m: &std::collections::BTreeMap<String, usize>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        }
    };
    let _ = writeln!(
        out,
        "segments (state/placement): {}; side segments of removed duplicates: {}",
        list(&r.segments),
        r.side_segments
    );
    let _ = writeln!(
        out,
        "copies in service: {}; copies out of service (for gc): {}",
        list(&r.copies),
        list(&r.dropped_copies)
    );
    let _ = writeln!(out, "superseded segments: {}", r.superseded.len());
    for (id, by) in &r.superseded {
        let by: Vec<String> = by.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "  {id} replaced by {}", by.join(", "));
    }
    if !r.contested.is_empty() {
        let _ = writeln!(out, "inputs claimed by several outputs (kept in service): {}", r.contested.len());
        for (id, by) in &r.contested {
            let by: Vec<String> = by.iter().map(ToString::to_string).collect();
            let _ = writeln!(out, "  {id} claimed by {}", by.join(", "));
        }
    }
    let _ = writeln!(out, "Parquet files without lineage (older files: they supersede nothing): {}", r.legacy_files);
    for (path, cut) in &r.tails_cut {
        let _ = writeln!(
            out,
            "row segment {path}: {cut} bytes past its last whole record cut (the whole file is in quarantine)"
        );
    }
    let _ = writeln!(out, "quarantined files: {}", r.quarantined.len());
    for q in &r.quarantined {
        let _ = writeln!(out, "  {} -> {}: {}", q.location, q.moved_to, q.reason);
    }
    let _ = writeln!(
        out,
        "events (stored rows): {} in live data segments, {} in side segments, {} in superseded segments",
        r.rows_live, r.rows_side, r.rows_superseded
    );
    let _ = writeln!(
        out,
        "not recoverable from the files: deletion requests (re-submit any that were not done), leases, read heat, \
         and segments a filtered rewrite retired whole (they are live again until retention or a deletion retires \
         them again)"
    );
    out
}
