//! `tierd trash list` and `tierd trash restore BATCH_MS [SEGMENT_ID...]`: what garbage collection deleted and is
//! still keeping (for `gc.trash_retention_secs`), and putting deleted segments back into service on a running
//! daemon.

use std::time::Duration;

use anyhow::bail;
use serde_json::{json, Value};

use super::{endpoint, http_client, server_message, unreachable_message, DEFAULT_URL};

#[derive(Debug, clap::Args)]
pub struct TrashArgs {
    #[command(subcommand)]
    pub command: TrashCommand,
    #[arg(long, env = "TIERD_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
    /// Print the daemon's JSON answer unchanged.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum TrashCommand {
    /// The segments the trash holds, by gc batch, with where their copies wait.
    List,
    /// Put segments of one gc batch that the catalog no longer has back into service (verified; crash-safe).
    Restore {
        /// The batch: the time (ms) of the gc run that deleted them, as `tierd trash list` shows it.
        batch_ms: i64,
        /// Segment ids of that batch; all of the batch when none are given.
        segments: Vec<String>,
    },
}

pub fn run_trash(a: TrashArgs) -> anyhow::Result<()> {
    let client = http_client(Duration::from_secs(3600))?;
    let unreachable = |e: reqwest::Error| anyhow::anyhow!(unreachable_message(&a.url, &e));
    let (resp, restore) = match &a.command {
        TrashCommand::List => {
            let url = endpoint(&a.url, "/v1/admin/trash").map_err(anyhow::Error::msg)?;
            (client.get(url).send().map_err(unreachable)?, false)
        }
        TrashCommand::Restore { batch_ms, segments } => {
            let url = endpoint(&a.url, "/v1/admin/trash/restore").map_err(anyhow::Error::msg)?;
            let body = json!({"batch_ms": batch_ms, "segments": segments});
            (client.post(url).json(&body).send().map_err(unreachable)?, true)
        }
    };
    let status = resp.status();
    let text = resp.text()?;
    if !status.is_success() {
        bail!("trash {} failed ({status}): {}", if restore { "restore" } else { "list" }, server_message(&text));
    }
    let answer: Value = serde_json::from_str(&text)?;
    if a.json {
        println!("{text}");
    } else if restore {
        print!("{}", format_restore(&answer));
    } else {
        print!("{}", format_list(&answer));
    }
    if restore {
        let failed = answer["results"].as_array().into_iter().flatten().filter(|r| r["outcome"] == "error").count();
        if failed > 0 {
            bail!("{failed} segment(s) were not restored");
        }
    }
    Ok(())
}

/// One line per trashed segment: `BATCH_MS  ID  project day  rows  bytes  state  copies  [in the catalog]`.
pub fn format_list(answer: &Value) -> String {
    let segments = answer["segments"].as_array().map(Vec::as_slice).unwrap_or_default();
    if segments.is_empty() {
        return "the trash is empty\n".into();
    }
    let mut out = String::new();
    for s in segments {
        let copies: Vec<String> = s["copies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{}{}",
                    c["location"]["tier"].as_str().unwrap_or("?"),
                    if c["present"].as_bool() == Some(true) { "" } else { " (gone)" }
                )
            })
            .collect();
        out.push_str(&format!(
            "{}  {}  {} {}  {} rows  {} bytes  {}  copies: {}{}\n",
            s["batch_ms"],
            s["id"].as_str().unwrap_or("?"),
            s["project"].as_str().unwrap_or("?"),
            s["day"].as_str().unwrap_or("?"),
            s["rows"],
            s["bytes"],
            s["state"].as_str().unwrap_or("?"),
            copies.join(", "),
            if s["in_catalog"].as_bool() == Some(true) { "  (in the catalog)" } else { "" }
        ));
    }
    out
}

/// One line per segment: `ID  restored -> hot/p/...` or `ID  in_catalog` or its error.
pub fn format_restore(answer: &Value) -> String {
    let mut out = String::new();
    for r in answer["results"].as_array().into_iter().flatten() {
        let id = r["segment"].as_str().unwrap_or("?");
        let outcome = r["outcome"].as_str().unwrap_or("?");
        match (r["location"]["path"].as_str(), r["error"].as_str()) {
            (Some(path), _) => out.push_str(&format!("{id}  {outcome} -> {path}\n")),
            (None, Some(e)) => out.push_str(&format!("{id}  {outcome}: {e}\n")),
            (None, None) => out.push_str(&format!("{id}  {outcome}\n")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_and_outcomes_read_well() {
        let list = json!({"segments": [
            {"batch_ms": 5, "id": "A", "project": "p", "day": "2026-01-01", "rows": 10, "bytes": 99, "state": "retired",
             "copies": [{"location": {"tier": "hot", "path": "hot/p/A.rows"}, "trash_path": "trash/5/hot/p/A.rows",
                         "present": true},
                        {"location": {"tier": "cold", "path": "segments/p/x"}, "trash_path": "trash/5/segments/p/x",
                         "present": false}],
             "in_catalog": false}]});
        assert_eq!(format_list(&list), "5  A  p 2026-01-01  10 rows  99 bytes  retired  copies: hot, cold (gone)\n");
        assert_eq!(format_list(&json!({"segments": []})), "the trash is empty\n");
        let restore = json!({"batch_ms": 5, "results": [
            {"segment": "A", "outcome": "restored", "location": {"tier": "hot", "path": "hot/p/A.B.rows"}},
            {"segment": "B", "outcome": "in_catalog"},
            {"segment": "C", "outcome": "error", "error": "no trashed copy matches"}]});
        assert_eq!(
            format_restore(&restore),
            "A  restored -> hot/p/A.B.rows\nB  in_catalog\nC  error: no trashed copy matches\n"
        );
    }
}
