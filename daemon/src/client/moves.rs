//! `tierd move SEGMENT_ID... --to cold|hot|both`: move named segments by hand on a running daemon, through the same
//! crash-safe steps and IO budget as the passes, and show each segment's outcome.

use anyhow::bail;

use super::daemon::{admin_call, show, DaemonArgs};
use crate::api::{MoveAnswer, MoveRequest, MoveStatus};

#[derive(Debug, clap::Args)]
pub struct MoveArgs {
    /// Segment ids (26-character ULIDs, as `GET /v1/catalog/segments` lists them).
    #[arg(required = true)]
    pub segments: Vec<String>,
    /// cold (object store only), hot (hot disk only) or both (a hot copy of a cold segment).
    #[arg(long, value_parser = ["cold", "hot", "both"])]
    pub to: String,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

pub fn run_move(a: MoveArgs) -> anyhow::Result<()> {
    let body = MoveRequest { segments: a.segments, to: a.to };
    let text = admin_call(&a.daemon.url, "/v1/admin/move", Some(&body), "move")?;
    let answer: MoveAnswer = show(&text, a.daemon.json, format_moves)?;
    let failed = answer.results.iter().filter(|r| r.outcome == MoveStatus::Error).count();
    if failed > 0 {
        bail!("{failed} segment(s) did not move");
    }
    Ok(())
}

/// One line per segment: `ID  hot -> cold  moved (1234 bytes copied, verified by etag)` or its error.
pub fn format_moves(answer: &MoveAnswer) -> String {
    let mut out = String::new();
    for r in &answer.results {
        let id = &r.segment;
        match r.outcome {
            MoveStatus::Error => out.push_str(&format!("{id}  error: {}\n", r.error.as_deref().unwrap_or("?"))),
            outcome => out.push_str(&format!(
                "{id}  {} -> {}  {} ({} bytes copied{})\n",
                r.from.map_or("?", |p| p.label()),
                r.to.map_or("?", |p| p.label()),
                outcome.label(),
                r.bytes_copied,
                r.verified_by.map(|m| format!(", verified by {}", m.label())).unwrap_or_default()
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn outcomes_are_listed_one_per_segment() {
        let answer = json!({"to": "cold", "results": [
            {"segment": "A", "outcome": "moved", "from": "hot", "to": "cold", "bytes_copied": 10,
             "verified_by": "etag"},
            {"segment": "B", "outcome": "unchanged", "from": "cold", "to": "cold", "bytes_copied": 0},
            {"segment": "C", "outcome": "error", "bytes_copied": 0, "error": "segment C not found"},
            {"segment": "D", "outcome": "moved", "from": "cold", "to": "both", "bytes_copied": 7,
             "verified_by": "read_back"},
        ]});
        assert_eq!(
            format_moves(&serde_json::from_value(answer).unwrap()),
            "A  hot -> cold  moved (10 bytes copied, verified by etag)\nB  cold -> cold  unchanged (0 bytes copied)\n\
             C  error: segment C not found\nD  cold -> both  moved (7 bytes copied, verified by read_back)\n"
        );
    }
}
