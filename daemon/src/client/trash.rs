//! `tierd trash list` and `tierd trash restore BATCH_MS [SEGMENT_ID...]`: what garbage collection deleted and is
//! still keeping (for `gc.trash_retention_secs`), and putting deleted segments back into service on a running
//! daemon.

use anyhow::bail;

use super::daemon::{admin_call, show, DEFAULT_URL};
use crate::api::{RestoreAnswer, RestoreRequest, RestoreStatus, TrashList};

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
    match a.command {
        TrashCommand::List => {
            let text = admin_call(&a.url, "/v1/admin/trash", None::<&()>, "trash list")?;
            show(&text, a.json, format_list)?;
        }
        TrashCommand::Restore { batch_ms, segments } => {
            let body = RestoreRequest { batch_ms, segments };
            let text = admin_call(&a.url, "/v1/admin/trash/restore", Some(&body), "trash restore")?;
            let answer: RestoreAnswer = show(&text, a.json, format_restore)?;
            let failed = answer.results.iter().filter(|r| r.outcome == RestoreStatus::Error).count();
            if failed > 0 {
                bail!("{failed} segment(s) were not restored");
            }
        }
    }
    Ok(())
}

/// One line per trashed segment: `BATCH_MS  ID  project day  rows  bytes  state  copies  [in the catalog]`.
pub fn format_list(answer: &TrashList) -> String {
    if answer.segments.is_empty() {
        return "the trash is empty\n".into();
    }
    let mut out = String::new();
    for s in &answer.segments {
        let copies: Vec<String> = s
            .copies
            .iter()
            .map(|c| format!("{}{}", c.location.tier.label(), if c.present { "" } else { " (gone)" }))
            .collect();
        out.push_str(&format!(
            "{}  {}  {} {}  {} rows  {} bytes  {}  copies: {}{}\n",
            s.batch_ms,
            s.id,
            s.project,
            s.day,
            s.rows,
            s.bytes,
            s.state,
            copies.join(", "),
            if s.in_catalog { "  (in the catalog)" } else { "" }
        ));
    }
    out
}

/// One line per segment: `ID  restored -> hot/p/...` or `ID  in_catalog` or its error.
pub fn format_restore(answer: &RestoreAnswer) -> String {
    let mut out = String::new();
    for r in &answer.results {
        let (id, outcome) = (&r.segment, r.outcome.label());
        match (&r.location, &r.error) {
            (Some(location), _) => out.push_str(&format!("{id}  {outcome} -> {}\n", location.path)),
            (None, Some(e)) => out.push_str(&format!("{id}  {outcome}: {e}\n")),
            (None, None) => out.push_str(&format!("{id}  {outcome}\n")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A segment id (the listing carries real ones).
    const ID: &str = "01HZY3Q8W6V4B2N7K9M5T1R0CX";

    #[test]
    fn listing_and_outcomes_read_well() {
        let list = json!({"segments": [
            {"batch_ms": 5, "id": ID, "project": "p", "day": "2026-01-01", "rows": 10, "bytes": 99, "state": "retired",
             "copies": [{"location": {"tier": "hot", "path": "hot/p/A.rows"}, "trash_path": "trash/5/hot/p/A.rows",
                         "present": true},
                        {"location": {"tier": "cold", "path": "segments/p/x"}, "trash_path": "trash/5/segments/p/x",
                         "present": false}],
             "in_catalog": false}]});
        assert_eq!(
            format_list(&serde_json::from_value(list).unwrap()),
            format!("5  {ID}  p 2026-01-01  10 rows  99 bytes  retired  copies: hot, cold (gone)\n")
        );
        assert_eq!(format_list(&serde_json::from_value(json!({"segments": []})).unwrap()), "the trash is empty\n");
        let restore = json!({"batch_ms": 5, "results": [
            {"segment": "A", "outcome": "restored", "location": {"tier": "hot", "path": "hot/p/A.B.rows"}},
            {"segment": "B", "outcome": "in_catalog"},
            {"segment": "C", "outcome": "error", "error": "no trashed copy matches"}]});
        assert_eq!(
            format_restore(&serde_json::from_value(restore).unwrap()),
            "A  restored -> hot/p/A.B.rows\nB  in_catalog\nC  error: no trashed copy matches\n"
        );
    }
}
