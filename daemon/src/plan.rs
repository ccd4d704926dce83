//! `tierd plan [--json] [--config FILE] [--data-dir DIR | --url URL]`: what the tiering policy would do now, and the
//! bill before and after, in dollars. It moves nothing.
//!
//! Two ways to get the plan: `--url` asks a running daemon (`GET /v1/plan`); otherwise the command opens a stopped
//! daemon's catalog itself and plans with the configuration given (`--config`, else the defaults) and the hot disk
//! under the data directory. The offline form runs no recovery and writes nothing of its own (opening the catalog is
//! sled's open, which migrates an older schema as the daemon would, and creates the empty `heat` tree if the daemon
//! never flushed one); it refuses a data directory whose catalog a
//! running daemon holds (sled's lock), pointing at `--url`. It lives beside `server` and `client` because it is
//! both: a client of a daemon, or a reader of its data directory.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context};
use tierd_policies::TieringActionKind;

use crate::api::PlanAnswer;
use tierd_store::layout::Layout;
use tierd_store::{Catalog, Clock, SystemClock};

use crate::client::daemon::{admin_call, DEFAULT_URL};
use crate::server::config::Config;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Print the plan as JSON (the body of `GET /v1/plan`).
    #[arg(long)]
    pub json: bool,
    /// TOML config file of the daemon (offline form); every key is optional.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory of a stopped daemon (overrides the config's `data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Ask the running daemon at this URL instead (`GET /v1/plan`); without it, and without `--config` and
    /// `--data-dir`, `$TIERD_URL` if set.
    #[arg(long)]
    pub url: Option<String>,
}

pub fn run(args: PlanArgs) -> anyhow::Result<()> {
    let url = which_daemon(&args, std::env::var("TIERD_URL").ok())?;
    let text = match url {
        Some(url) => admin_call(&url, "/v1/plan", None::<&()>, "plan")?,
        None => serde_json::to_string(&offline(args.config, args.data_dir)?)?,
    };
    if args.json {
        println!("{text}");
        return Ok(());
    }
    let plan: PlanAnswer = serde_json::from_str(&text)?;
    print!("{}", format_plan(&plan));
    Ok(())
}

/// The daemon to ask, if any: `--url`, else `$TIERD_URL` (`env_url`) unless the offline form is asked for. TIERD_URL
/// set in the environment must not win over an explicit `--config`/`--data-dir` (clap's `env` would make it
/// conflict with them), but both forms given on the command line are a mistake worth saying.
fn which_daemon(args: &PlanArgs, env_url: Option<String>) -> anyhow::Result<Option<String>> {
    let offline = args.config.is_some() || args.data_dir.is_some();
    match (&args.url, offline) {
        (Some(_), true) => bail!(
            "--url asks a running daemon; --config and --data-dir read a stopped daemon's catalog: give one or the \
             other"
        ),
        (Some(url), false) => Ok(Some(url.clone())),
        (None, true) => Ok(None),
        (None, false) => Ok(env_url.filter(|u| !u.is_empty())),
    }
}

/// The plan over a stopped daemon's catalog.
fn offline(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<PlanAnswer> {
    let mut config = match &config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(d) = data_dir {
        config.data_dir = d;
    }
    config.validate()?;
    let layout = Layout::new(config.data_dir.clone());
    let dir = layout.catalog_dir();
    if !dir.is_dir() {
        bail!("no catalog in {}: give the data directory of a tierd daemon (--data-dir)", dir.display());
    }
    let catalog = Catalog::open(&dir).with_context(|| {
        format!(
            "cannot open the catalog in {} (if a daemon is running, it holds the catalog locked: ask it instead \
             with `tierd plan --url {DEFAULT_URL}`)",
            dir.display()
        )
    })?;
    let catalog = std::sync::Arc::new(catalog);
    let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(SystemClock);
    // The read heat the daemon persisted at its last flush (loading it changes no record).
    let heat = tierd_store::HeatTracker::open(catalog.clone(), clock.clone(), config.heat_config()?)
        .context("cannot load read heat from the catalog")?;
    let snapshot = catalog.snapshot();
    Ok(crate::server::tiering::plan(&config, &layout.hot_dir(), &snapshot, Some(&heat), clock.now_ms()))
}

fn usd(v: f64) -> String {
    // A sum of nothing is -0.0 in Rust: no "$-0.000000".
    let v = if v == 0.0 { 0.0 } else { v };
    if v.abs() >= 1.0 {
        format!("${v:.2}")
    } else {
        format!("${v:.6}")
    }
}

/// The plan as people read it: each action with its reason, the monthly bill by tier and codec before and after,
/// the one-time transition cost and the break-even time.
pub fn format_plan(answer: &PlanAnswer) -> String {
    let (plan, omitted) = (&answer.plan, answer.omitted_actions);
    let mut out = String::new();
    let total = plan.actions.len() as u64 + omitted;
    let _ = writeln!(out, "tiering plan: {total} action(s); nothing is moved by `tierd plan`");
    for a in &plan.actions {
        let what = match &a.kind {
            TieringActionKind::Move { to } => format!("move to {}", tierd_policies::tiering::label(*to)),
            TieringActionKind::Recompress { codec } => format!("recompress to {codec}"),
            TieringActionKind::Compact { target_bytes } => format!("compact towards {target_bytes} B"),
        };
        let _ = writeln!(
            out,
            "  {} {} day {}: {what} [rule {}] {:+.6} USD/month, {} once",
            a.segment,
            a.project,
            a.day,
            a.rule,
            a.monthly_cost_delta,
            usd(a.transition_cost)
        );
        let _ = writeln!(out, "      {}", a.reason);
    }
    if omitted > 0 {
        let _ = writeln!(
            out,
            "  ... and {omitted} more action(s) not listed (policy.max_plan_actions); the totals count them"
        );
    }
    let _ = writeln!(out, "monthly cost (storage and cold reads, USD):");
    let _ = writeln!(out, "  {:<24} {:>14} {:>14} {:>10} {:>10}", "", "before", "after", "segments", "after");
    let rows = plan
        .by_tier
        .iter()
        .map(|(k, v)| (format!("tier {k}"), v))
        .chain(plan.by_codec.iter().map(|(k, v)| (format!("codec {k}"), v)));
    for (name, c) in rows {
        let _ = writeln!(
            out,
            "  {name:<24} {:>14.6} {:>14.6} {:>10} {:>10}",
            c.monthly_before, c.monthly_after, c.segments, c.segments_after
        );
    }
    let _ = writeln!(out, "  {:<24} {:>14.6} {:>14.6}", "total", plan.monthly_cost_before, plan.monthly_cost_after);
    let _ = writeln!(out, "one-time transition cost: {}", usd(plan.transition_cost));
    let saving = plan.monthly_cost_before - plan.monthly_cost_after;
    let _ = match plan.break_even_ms {
        Some(ms) => writeln!(out, "break-even: {} (saves {} a month)", duration(ms), usd(saving)),
        None => writeln!(out, "break-even: never (the plan saves nothing a month: {})", usd(saving)),
    };
    if let Some(r) = &answer.retention {
        format_retention(&mut out, r);
    }
    out
}

/// The `retention` block: what the retention pass would remove now, and what that saves.
fn format_retention(out: &mut String, answer: &crate::api::RetentionAnswer) {
    let r = &answer.plan;
    let _ = writeln!(
        out,
        "retention: {} segment(s) to retire, {} to rewrite without expired rows; about {} row(s) and {} byte(s), \
         saving {} a month once gc has deleted them",
        r.segments_retired,
        r.segments_rewritten,
        r.rows_removed_estimate,
        r.bytes_freed_estimate,
        usd(r.monthly_saving)
    );
    for (project, cutoff) in &r.cutoffs {
        let _ = writeln!(out, "  project {project}: events before {cutoff} ms are past retention");
    }
    for a in &r.actions {
        let _ = writeln!(out, "  {} {}: {} ({} B, {} rows)", a.segment, a.project, a.kind.label(), a.bytes, a.rows);
        let _ = writeln!(out, "      {}", a.reason);
    }
    if answer.omitted_actions > 0 {
        let _ = writeln!(out, "  ... and {} more not listed (policy.max_plan_actions)", answer.omitted_actions);
    }
}

/// `3.2d`, `5.0h`, `12min`, `40s`.
fn duration(ms: i64) -> String {
    let s = ms as f64 / 1000.0;
    if s >= 86_400.0 {
        format!("{:.1}d", s / 86_400.0)
    } else if s >= 3_600.0 {
        format!("{:.1}h", s / 3_600.0)
    } else if s >= 60.0 {
        format!("{:.0}min", s / 60.0)
    } else {
        format!("{s:.0}s")
    }
}

#[cfg(test)]
mod tests {
    use tierd_policies::{Capacity, Placement, Prices, SegmentFormat, SegmentState, SegmentStats, TieringPolicy};

    use super::*;

    #[test]
    fn an_offline_request_is_never_sent_to_tierd_url() {
        let args = |url: Option<&str>, data_dir: Option<&str>| PlanArgs {
            json: false,
            config: None,
            data_dir: data_dir.map(PathBuf::from),
            url: url.map(String::from),
        };
        let env = || Some("http://env:1".to_string());
        assert_eq!(which_daemon(&args(None, Some("/d")), env()).unwrap(), None);
        assert_eq!(which_daemon(&args(None, None), env()).unwrap().as_deref(), Some("http://env:1"));
        assert_eq!(which_daemon(&args(Some("http://u:2"), None), env()).unwrap().as_deref(), Some("http://u:2"));
        assert_eq!(which_daemon(&args(None, None), None).unwrap(), None);
        let e = which_daemon(&args(Some("http://u:2"), Some("/d")), None).unwrap_err().to_string();
        assert!(e.contains("one or the other"), "{e}");
    }

    #[test]
    fn the_human_form_lists_actions_reasons_and_the_bill() {
        let day = 86_400_000;
        let s = SegmentStats {
            id: "01ABC".into(),
            project: "web".into(),
            day: 20_000,
            state: SegmentState::Sealed,
            format: SegmentFormat::Columnar,
            codec: "zstd-19".into(),
            rows: 1,
            bytes: 1 << 30,
            created_at_ms: 0,
            max_time_ms: 0,
            placement: Placement::Hot,
            placed_at_ms: 0,
            heat: 0.0,
            heat_bytes: 0.0,
        };
        let plan =
            TieringPolicy::default().plan(30 * day, std::slice::from_ref(&s), &Prices::default(), &Capacity::default());
        let text = format_plan(&PlanAnswer { plan: plan.clone(), omitted_actions: 0, retention: None });
        assert!(text.contains("1 action(s)"), "{text}");
        assert!(text.contains("01ABC web day 20000: move to cold [rule idle] -0.057000 USD/month"), "{text}");
        assert!(text.contains("rule \"idle\": hot -> cold"), "{text}");
        assert!(text.contains("tier hot") && text.contains("codec zstd-19"), "{text}");
        // 1 GiB in 8 MiB parts: 128 + 2 PUTs x $0.005/1000 = $0.00065, paid back by $0.057 a month (30 days) in
        // 0.00065 / 0.057 x 720 h = 8.2 h.
        assert!(text.contains("one-time transition cost: $0.000650"), "{text}");
        assert!(text.contains("break-even: 8.2h"), "{text}");
        let empty = format_plan(&PlanAnswer::default());
        assert!(empty.contains("break-even: never"), "{empty}");

        // Two actions, one listed: the listing is cut, the count and the bill are not.
        let mut other = s;
        other.id = "01ABD".into();
        let two = TieringPolicy::default().plan(30 * day, &[other], &Prices::default(), &Capacity::default());
        let mut both = plan.clone();
        both.actions.extend(two.actions);
        both.monthly_cost_before *= 2.0;
        let cut = crate::server::tiering::answer(both.clone(), 1);
        assert_eq!((cut.plan.actions.len(), cut.omitted_actions), (1, 1));
        assert_eq!(cut.plan.monthly_cost_before, both.monthly_cost_before);
        let json: serde_json::Value = serde_json::to_value(&cut).unwrap();
        assert_eq!((json["omitted_actions"].as_u64(), json["actions"].as_array().map(Vec::len)), (Some(1), Some(1)));
        let text = format_plan(&cut);
        assert!(text.contains("2 action(s)") && text.contains("and 1 more action(s) not listed"), "{text}");
        let whole = crate::server::tiering::answer(both, 2);
        assert_eq!((whole.plan.actions.len(), whole.omitted_actions), (2, 0));
    }
}
