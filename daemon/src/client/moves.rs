//! `tierd move SEGMENT_ID... --to cold|hot|both`: move named segments by hand on a running daemon, through the same
//! crash-safe steps and IO budget as the passes, and show each segment's outcome.

use std::time::Duration;

use anyhow::bail;
use serde_json::{json, Value};

use super::{endpoint, http_client, server_message, unreachable_message, DEFAULT_URL};

#[derive(Debug, clap::Args)]
pub struct MoveArgs {
    /// Segment ids (26-character ULIDs, as `GET /v1/catalog/segments` lists them).
    #[arg(required = true)]
    pub segments: Vec<String>,
    /// cold (object store only), hot (hot disk only) or both (a hot copy of a cold segment).
    #[arg(long, value_parser = ["cold", "hot", "both"])]
    pub to: String,
    #[arg(long, env = "TIERD_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Print the daemon's JSON answer unchanged.
    #[arg(long)]
    pub json: bool,
}

pub fn run_move(a: MoveArgs) -> anyhow::Result<()> {
    let url = endpoint(&a.url, "/v1/admin/move").map_err(anyhow::Error::msg)?;
    let client = http_client(Duration::from_secs(3600))?;
    let body = json!({"segments": a.segments, "to": a.to});
    let resp = client.post(url).json(&body).send().map_err(|e| anyhow::anyhow!(unreachable_message(&a.url, &e)))?;
    let status = resp.status();
    let text = resp.text()?;
    if !status.is_success() {
        bail!("move failed ({status}): {}", server_message(&text));
    }
    if a.json {
        println!("{text}");
    } else {
        print!("{}", format_moves(&serde_json::from_str(&text)?));
    }
    let answer: Value = serde_json::from_str(&text)?;
    let failed = answer["results"].as_array().into_iter().flatten().filter(|r| r["outcome"] == "error").count();
    if failed > 0 {
        bail!("{failed} segment(s) did not move");
    }
    Ok(())
}

/// One line per segment: `ID  hot -> cold  moved (1234 bytes copied, verified by etag)` or its error.
pub fn format_moves(answer: &Value) -> String {
    let mut out = String::new();
    for r in answer["results"].as_array().into_iter().flatten() {
        let id = r["segment"].as_str().unwrap_or("?");
        match r["outcome"].as_str() {
            Some("error") => out.push_str(&format!("{id}  error: {}\n", r["error"].as_str().unwrap_or("?"))),
            outcome => out.push_str(&format!(
                "{id}  {} -> {}  {} ({} bytes copied{})\n",
                r["from"].as_str().unwrap_or("?"),
                r["to"].as_str().unwrap_or("?"),
                outcome.unwrap_or("?"),
                r["bytes_copied"].as_u64().unwrap_or(0),
                r["verified_by"].as_str().map(|m| format!(", verified by {m}")).unwrap_or_default()
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
            format_moves(&answer),
            "A  hot -> cold  moved (10 bytes copied, verified by etag)\nB  cold -> cold  unchanged (0 bytes copied)\n\
             C  error: segment C not found\nD  cold -> both  moved (7 bytes copied, verified by read_back)\n"
        );
    }
}
