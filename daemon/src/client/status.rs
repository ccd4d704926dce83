//! `tierd status [--json] [--url URL]`: what a running daemon's scheduler does (each pass's schedule, next and last
//! run, counts) and how its last configuration reload went.

use super::daemon::{admin_call, show, DaemonArgs};
use crate::api::StatusAnswer;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

pub fn run_status(args: StatusArgs) -> anyhow::Result<()> {
    let text = admin_call(&args.daemon.url, "/v1/status", None::<&()>, "status")?;
    show::<StatusAnswer>(&text, args.daemon.json, format_status)?;
    Ok(())
}

/// Milliseconds as a short duration relative to now: `in 42s`, `3m ago`.
fn relative(ms: i64, now_ms: i64) -> String {
    let d = (ms - now_ms) / 1000;
    let abs = d.unsigned_abs();
    let text = match abs {
        0..=119 => format!("{abs}s"),
        120..=7199 => format!("{}m", abs / 60),
        7200..=172_799 => format!("{}h", abs / 3600),
        _ => format!("{}d", abs / 86_400),
    };
    if d >= 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A readable table of a status answer.
pub fn format_status(s: &StatusAnswer) -> String {
    let mut out = String::new();
    if !s.scheduler {
        out.push_str("scheduler: off (--no-schedules): passes run only when asked\n");
    }
    out.push_str(&format!(
        "{:<11} {:<18} {:<10} {:<9} {:<10} {:>7} {:>5} {:>5} {:>5} {:>8}\n",
        "PASS", "SCHEDULE", "NEXT", "LAST", "OUTCOME", "ACTIONS", "RUNS", "FAIL", "SKIP", "TOOK"
    ));
    for p in &s.passes {
        let schedule = if p.schedule.is_empty() { "-".to_string() } else { p.schedule.clone() };
        let next = match (p.running, p.next_run_ms) {
            (true, _) => "running".to_string(),
            (false, Some(ms)) => relative(ms, s.now_ms),
            (false, None) => "-".to_string(),
        };
        let (last, outcome, actions, took) = match &p.last_run {
            Some(r) => (
                relative(r.finished_ms, s.now_ms),
                format!("{}{}", r.outcome, if r.trigger.label() == "manual" { "*" } else { "" }),
                r.actions.to_string(),
                format!("{:.1}s", r.duration_ms as f64 / 1000.0),
            ),
            None => ("never".into(), "-".into(), "-".into(), "-".into()),
        };
        out.push_str(&format!(
            "{:<11} {:<18} {:<10} {:<9} {:<10} {:>7} {:>5} {:>5} {:>5} {:>8}\n",
            p.name, schedule, next, last, outcome, actions, p.runs, p.failures, p.skipped, took
        ));
        if let Some(message) = p.last_run.as_ref().and_then(|r| r.message.as_ref()) {
            out.push_str(&format!("  {}: {message}\n", p.name));
        }
    }
    out.push_str("(* = run by hand)\n");
    let c = &s.config;
    let path = c.path.as_deref().unwrap_or("(none: started without --config)");
    out.push_str(&format!("config: {path}; reloads: {} applied, {} refused\n", c.reloads_applied, c.reloads_refused));
    if let Some(r) = &c.last_reload {
        out.push_str(&format!("last reload {}: {}: {}\n", relative(r.at_ms, s.now_ms), r.outcome, r.message));
    }
    if !s.damaged_segments.is_empty() {
        out.push_str(&format!("{} segment(s) with no good copy (reads of them fail):\n", s.damaged_segments.len()));
        for d in &s.damaged_segments {
            out.push_str(&format!("  {}: {} copy {} (found by {})\n", d.segment, d.tier, d.problem, d.found_by));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_table_shows_schedule_next_last_outcome_and_the_reload() {
        let s = json!({
            "now_ms": 1_000_000, "scheduler": true,
            "passes": [
                {"name": "reencode", "schedule": "0 * * * * *", "enabled": true, "next_run_ms": 1_042_000,
                 "running": false, "runs": 3, "failures": 1, "skipped": 0,
                 "last_run": {"trigger": "schedule", "started_ms": 990_000, "finished_ms": 995_000,
                              "duration_ms": 5_000, "outcome": "failed", "actions": 2, "errors": 1,
                              "message": "reencode of [\"A\"]: disk full"}},
                {"name": "gc", "schedule": "", "enabled": false, "next_run_ms": null, "running": false,
                 "last_run": null, "runs": 0, "failures": 0, "skipped": 0}
            ],
            "config": {"path": "/etc/tierd.toml", "reloads_applied": 1, "reloads_refused": 1,
                       "last_reload": {"at_ms": 940_000, "outcome": "refused", "message": "changes hot"}}
        });
        let text = format_status(&serde_json::from_value(s).unwrap());
        let reencode = text.lines().find(|l| l.starts_with("reencode")).unwrap();
        for part in ["0 * * * * *", "in 42s", "5s ago", "failed", "5.0s"] {
            assert!(reencode.contains(part), "{part} in {reencode}");
        }
        assert!(text.contains("reencode: reencode of [\"A\"]: disk full"), "{text}");
        let gc = text.lines().find(|l| l.starts_with("gc")).unwrap();
        assert!(gc.contains("never") && gc.contains(" - "), "{gc}");
        assert!(text.contains("reloads: 1 applied, 1 refused"), "{text}");
        assert!(text.contains("last reload 60s ago: refused: changes hot"), "{text}");
    }
}
