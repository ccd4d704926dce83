//! `tierd pass run NAME [--dry-run] [--project P]`: run a background pass now on a running daemon and show what
//! it did (or, with `--dry-run`, what it would do and why).

use anyhow::bail;

use super::daemon::{admin_call, DaemonArgs};
use crate::api::{PassReport, PassRequest};

#[derive(Debug, clap::Args)]
pub struct PassArgs {
    #[command(subcommand)]
    pub command: PassCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum PassCommand {
    /// Run one pass now: reencode, compact, recompress, migrate, promote, gc, retention or deletions.
    Run(PassRunArgs),
}

#[derive(Debug, clap::Args)]
pub struct PassRunArgs {
    /// reencode | compact | recompress | migrate | promote | gc | retention | deletions
    pub name: String,
    #[command(flatten)]
    pub options: PassOptions,
}

/// What `tierd pass run` and `tierd gc` take besides the pass.
#[derive(Debug, Clone, clap::Args)]
pub struct PassOptions {
    /// Plan and report only; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only this project's segments.
    #[arg(long)]
    pub project: Option<String>,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// `tierd gc [--dry-run]`: the gc pass, under its own name (what would go and why, or what went), with the options
/// of `tierd pass run` described as they apply to gc.
#[derive(Debug, clap::Args)]
#[command(mut_arg("dry_run", |a| a.help(
    "List what would be deleted, kept, expired, purged or reported, and why; change nothing"
)))]
#[command(mut_arg("project", |a| a.help("Only this project's copies in the report (gc itself is node-wide)")))]
pub struct GcArgs {
    #[command(flatten)]
    pub options: PassOptions,
}

pub fn run_gc(a: GcArgs) -> anyhow::Result<()> {
    run_pass(PassArgs { command: PassCommand::Run(PassRunArgs { name: "gc".into(), options: a.options }) })
}

pub fn run_pass(args: PassArgs) -> anyhow::Result<()> {
    let PassCommand::Run(PassRunArgs { name, options: o }) = args.command;
    let body = PassRequest { dry_run: o.dry_run, project: o.project };
    let path = format!("/v1/admin/passes/{name}/run");
    let text = admin_call(&o.daemon.url, &path, Some(&body), &format!("pass {name}"))?;
    if o.daemon.json {
        println!("{text}");
        return Ok(());
    }
    let report: PassReport = serde_json::from_str(&text)?;
    print!("{}", format_report(&report));
    if !report.errors.is_empty() {
        bail!("{} action(s) of pass {name} failed", report.errors.len());
    }
    Ok(())
}

/// A readable listing of a pass report.
pub fn format_report(r: &PassReport) -> String {
    let mut out = String::new();
    let verb = if r.dry_run { "would run" } else { "ran" };
    out.push_str(&format!("pass {}: {verb} {} action(s)\n", r.pass, r.actions.len()));
    let (mut before, mut after) = (0u64, 0u64);
    for a in &r.actions {
        before += a.bytes_before;
        let after_text = match a.bytes_after {
            Some(x) => {
                after += x;
                format!(" -> {x} bytes")
            }
            None => String::new(),
        };
        let outputs = a.outputs.len();
        out.push_str(&format!(
            "  {:<10} {} input(s), {} bytes{after_text}{}: {}\n",
            a.kind.label(),
            a.inputs.len(),
            a.bytes_before,
            if outputs > 0 { format!(", {outputs} output(s)") } else { String::new() },
            a.reason
        ));
    }
    for k in &r.kept {
        let input = k.inputs.first().map_or("?", String::as_str);
        out.push_str(&format!("  {:<10} {input}: {}\n", k.kind.label(), k.reason));
    }
    if !r.dry_run && !r.actions.is_empty() {
        out.push_str(&format!("bytes: {before} -> {after}\n"));
    }
    for e in &r.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    if let Some(d) = &r.deferred {
        out.push_str(&format!("deferred: {d}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reports_list_actions_totals_kept_and_errors() {
        let r = json!({
            "pass": "compact", "dry_run": false,
            "actions": [{"kind": "compact", "inputs": ["A", "B"], "outputs": ["C"], "bytes_before": 300,
                         "bytes_after": 120, "reason": "2 small segments"}],
            "kept": [{"kind": "keep", "inputs": ["D"], "outputs": [], "bytes_before": 5, "bytes_after": null,
                      "reason": "held by lease L"}],
            "errors": ["compact of [\"E\"]: stale"],
        });
        let text = format_report(&serde_json::from_value(r).unwrap());
        assert!(text.starts_with("pass compact: ran 1 action(s)\n"), "{text}");
        assert!(text.contains("2 input(s), 300 bytes -> 120 bytes, 1 output(s): 2 small segments"), "{text}");
        assert!(text.contains("keep       D: held by lease L"), "{text}");
        assert!(text.contains("bytes: 300 -> 120"), "{text}");
        assert!(text.contains("error: compact of"), "{text}");
        let dry = json!({"pass": "gc", "dry_run": true, "actions": [], "errors": []});
        assert_eq!(format_report(&serde_json::from_value(dry).unwrap()), "pass gc: would run 0 action(s)\n");
    }
}
