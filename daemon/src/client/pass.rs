//! `tierd pass run NAME [--dry-run] [--project P]`: run a background pass now on a running daemon and show what
//! it did (or, with `--dry-run`, what it would do and why).

use std::time::Duration;

use anyhow::bail;
use serde_json::{json, Value};

use super::{endpoint, http_client, server_message, unreachable_message, DEFAULT_URL};

#[derive(Debug, clap::Args)]
pub struct PassArgs {
    #[command(subcommand)]
    pub command: PassCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum PassCommand {
    /// Run one pass now: reencode, compact, recompress, migrate, promote or gc.
    Run(PassRunArgs),
}

#[derive(Debug, clap::Args)]
pub struct PassRunArgs {
    /// reencode | compact | recompress | migrate | promote | gc
    pub name: String,
    /// Plan and report only; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only this project's segments.
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long, env = "TIERD_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Print the daemon's JSON answer unchanged.
    #[arg(long)]
    pub json: bool,
}

/// `tierd gc [--dry-run]`: the gc pass, under its own name (what would go and why, or what went).
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// List what would be deleted, kept, expired, purged or reported, and why; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only this project's copies in the report (gc itself is node-wide).
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long, env = "TIERD_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Print the daemon's JSON answer unchanged.
    #[arg(long)]
    pub json: bool,
}

pub fn run_gc(a: GcArgs) -> anyhow::Result<()> {
    let run = PassRunArgs { name: "gc".into(), dry_run: a.dry_run, project: a.project, url: a.url, json: a.json };
    run_pass(PassArgs { command: PassCommand::Run(run) })
}

pub fn run_pass(args: PassArgs) -> anyhow::Result<()> {
    let PassCommand::Run(a) = args.command;
    let url = endpoint(&a.url, &format!("/v1/admin/passes/{}/run", a.name)).map_err(anyhow::Error::msg)?;
    let client = http_client(Duration::from_secs(3600))?;
    let body = json!({"dry_run": a.dry_run, "project": a.project});
    let resp = client.post(url).json(&body).send().map_err(|e| anyhow::anyhow!(unreachable_message(&a.url, &e)))?;
    let status = resp.status();
    let text = resp.text()?;
    if !status.is_success() {
        bail!("pass {} failed ({status}): {}", a.name, server_message(&text));
    }
    if a.json {
        println!("{text}");
        return Ok(());
    }
    let report: Value = serde_json::from_str(&text)?;
    print!("{}", format_report(&report));
    let errors = report["errors"].as_array().map_or(0, Vec::len);
    if errors > 0 {
        bail!("{errors} action(s) of pass {} failed", a.name);
    }
    Ok(())
}

/// A readable listing of a pass report.
pub fn format_report(r: &Value) -> String {
    let mut out = String::new();
    let dry = r["dry_run"].as_bool().unwrap_or(false);
    let actions = r["actions"].as_array().cloned().unwrap_or_default();
    let verb = if dry { "would run" } else { "ran" };
    out.push_str(&format!("pass {}: {verb} {} action(s)\n", r["pass"].as_str().unwrap_or("?"), actions.len()));
    let (mut before, mut after) = (0u64, 0u64);
    for a in &actions {
        let b = a["bytes_before"].as_u64().unwrap_or(0);
        before += b;
        let after_text = match a["bytes_after"].as_u64() {
            Some(x) => {
                after += x;
                format!(" -> {x} bytes")
            }
            None => String::new(),
        };
        let outputs = a["outputs"].as_array().map(|o| o.len()).unwrap_or(0);
        out.push_str(&format!(
            "  {:<10} {} input(s), {b} bytes{after_text}{}: {}\n",
            a["kind"].as_str().unwrap_or("?"),
            a["inputs"].as_array().map_or(0, Vec::len),
            if outputs > 0 { format!(", {outputs} output(s)") } else { String::new() },
            a["reason"].as_str().unwrap_or("")
        ));
    }
    for k in r["kept"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<10} {}: {}\n",
            k["kind"].as_str().unwrap_or("keep"),
            k["inputs"][0].as_str().unwrap_or("?"),
            k["reason"].as_str().unwrap_or("")
        ));
    }
    if !dry && !actions.is_empty() {
        out.push_str(&format!("bytes: {before} -> {after}\n"));
    }
    for e in r["errors"].as_array().into_iter().flatten() {
        out.push_str(&format!("error: {}\n", e.as_str().unwrap_or("?")));
    }
    out
}

#[cfg(test)]
mod tests {
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
        let text = format_report(&r);
        assert!(text.starts_with("pass compact: ran 1 action(s)\n"), "{text}");
        assert!(text.contains("2 input(s), 300 bytes -> 120 bytes, 1 output(s): 2 small segments"), "{text}");
        assert!(text.contains("keep       D: held by lease L"), "{text}");
        assert!(text.contains("bytes: 300 -> 120"), "{text}");
        assert!(text.contains("error: compact of"), "{text}");
        let dry = json!({"pass": "gc", "dry_run": true, "actions": [], "errors": []});
        assert_eq!(format_report(&dry), "pass gc: would run 0 action(s)\n");
    }
}
