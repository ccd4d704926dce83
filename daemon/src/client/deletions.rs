//! `tierd delete-user`, `tierd delete-events` and `tierd deletions list|show ID`: deletion requests on a running
//! daemon (`POST`/`GET /v1/admin/deletions`). A request is acknowledged once durable, and readers stop seeing its
//! events at that moment; `--wait` then follows it until the deletions pass (and gc) report it `done`.

use std::time::Duration;

use anyhow::bail;
use tierd_store::{Clock, SystemClock};

use super::daemon::{admin_call, show, DEFAULT_URL};
use super::query::{parse_time, parse_where};
use crate::api::{
    DeletionAccepted, DeletionBody, DeletionFilter, DeletionList, DeletionProgress, DeletionRequest, DeletionState,
};

/// Where the daemon is, and how to show its answers (shared by the deletion commands).
#[derive(Debug, clap::Args)]
pub struct DeletionTarget {
    #[arg(long, env = "TIERD_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Print the daemon's JSON answers unchanged.
    #[arg(long)]
    pub json: bool,
}

/// How long `--wait` follows a request.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Follow the request until it is done (the deletions pass has removed its events from every copy).
    #[arg(long)]
    pub wait: bool,
    /// With `--wait`: give up (exit 1, the request stays in force) after this many seconds.
    #[arg(long, default_value_t = 3600, requires = "wait")]
    pub timeout_secs: u64,
}

#[derive(Debug, clap::Args)]
pub struct DeleteUserArgs {
    /// The project the user's events belong to.
    #[arg(long)]
    pub project: String,
    /// A distinct id to delete (repeat for several users in one request).
    #[arg(long = "distinct-id", required = true)]
    pub distinct_ids: Vec<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub target: DeletionTarget,
}

#[derive(Debug, clap::Args)]
pub struct DeleteEventsArgs {
    /// The project the events belong to.
    #[arg(long)]
    pub project: String,
    /// Only events of this name (any name when absent; then give at least one --where).
    #[arg(long)]
    pub event: Option<String>,
    /// Start of the window (inclusive): epoch ms, YYYY-MM-DD (UTC midnight) or RFC 3339.
    #[arg(long, value_parser = parse_time)]
    pub from: i64,
    /// End of the window (exclusive), as --from.
    #[arg(long, value_parser = parse_time)]
    pub to: i64,
    /// A condition every deleted event meets, as `tierd query --where` takes it (`os = ios`, `n >= 3`, `x exists`).
    #[arg(long = "where", value_parser = parse_where)]
    pub conditions: Vec<crate::api::WhereClause>,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub target: DeletionTarget,
}

#[derive(Debug, clap::Args)]
pub struct DeletionsArgs {
    #[command(subcommand)]
    pub command: DeletionsCommand,
    #[arg(long, env = "TIERD_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
    /// Print the daemon's JSON answer unchanged.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum DeletionsCommand {
    /// Every deletion request, oldest first, with its state and progress.
    List,
    /// One request: what it deletes, its state and progress.
    Show {
        /// The request's id, as `tierd delete-user` printed it.
        id: String,
    },
}

pub fn run_delete_user(a: DeleteUserArgs) -> anyhow::Result<()> {
    let body = DeletionBody { project: a.project, distinct_ids: Some(a.distinct_ids), ..Default::default() };
    submit(&a.target, &body, &a.wait)
}

pub fn run_delete_events(a: DeleteEventsArgs) -> anyhow::Result<()> {
    let filter = DeletionFilter { event: a.event, from: a.from, to: a.to, conditions: a.conditions };
    let body = DeletionBody { project: a.project, filter: Some(filter), ..Default::default() };
    submit(&a.target, &body, &a.wait)
}

fn submit(target: &DeletionTarget, body: &DeletionBody, wait: &WaitArgs) -> anyhow::Result<()> {
    let text = admin_call(&target.url, "/v1/admin/deletions", Some(body), "deletion request")?;
    let accepted: DeletionAccepted = show(&text, target.json, format_accepted)?;
    if wait.wait {
        follow(&target.url, &accepted.id.to_string(), target.json, Duration::from_secs(wait.timeout_secs))?;
    }
    Ok(())
}

/// Polls a request once a second until it is done, printing each change of state or progress.
fn follow(url: &str, id: &str, json: bool, timeout: Duration) -> anyhow::Result<()> {
    let clock = SystemClock;
    let deadline = clock.now_ms().saturating_add(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX));
    let mut last: Option<(DeletionState, DeletionProgress)> = None;
    loop {
        let text = admin_call(url, &format!("/v1/admin/deletions/{id}"), None::<&()>, "deletion status")?;
        let r: DeletionRequest = serde_json::from_str(&text)?;
        let now = Some((r.state, r.progress.clone()));
        if now != last {
            if json {
                println!("{text}");
            } else {
                print!("{}", format_progress(&r));
            }
            last = now;
        }
        if r.state == DeletionState::Done {
            return Ok(());
        }
        if clock.now_ms() >= deadline {
            bail!(
                "deletion {id} is still {} after {} s (it stays in force: readers do not see its events; \
                 follow it with `tierd deletions show {id}`)",
                r.state,
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

pub fn run_deletions(a: DeletionsArgs) -> anyhow::Result<()> {
    match a.command {
        DeletionsCommand::List => {
            let text = admin_call(&a.url, "/v1/admin/deletions", None::<&()>, "deletions list")?;
            show(&text, a.json, format_list)?;
        }
        DeletionsCommand::Show { id } => {
            let text = admin_call(&a.url, &format!("/v1/admin/deletions/{id}"), None::<&()>, "deletion show")?;
            show(&text, a.json, format_request)?;
        }
    }
    Ok(())
}

pub fn format_accepted(a: &DeletionAccepted) -> String {
    format!(
        "deletion {} accepted ({}): its events ingested up to sequence {} are hidden from now on\n",
        a.id, a.state, a.max_seq
    )
}

/// `STATE  rewritten N, retired N, rows N, bytes freed N[, error: ...]`.
fn progress_line(state: DeletionState, p: &DeletionProgress) -> String {
    let mut line = format!(
        "{state}  rewritten {}, retired {}, rows removed {}, bytes freed {}",
        p.segments_rewritten, p.segments_retired, p.rows_removed, p.bytes_freed
    );
    if let Some(e) = &p.error {
        line.push_str(&format!(", error: {e}"));
    }
    line
}

fn format_progress(r: &DeletionRequest) -> String {
    format!("{}  {}\n", r.id, progress_line(r.state, &r.progress))
}

/// What a request deletes, in words: `users a, b` or `events Junk in [from, to) where os eq "ios"`.
fn what(distinct_ids: usize, events: Option<&crate::api::EventSelection>) -> String {
    match events {
        Some(s) => {
            let mut w =
                format!("events {} in [{}, {})", s.event.as_deref().unwrap_or("(any name)"), s.from_ms, s.to_ms);
            for (i, c) in s.conditions.iter().enumerate() {
                let op = serde_json::to_value(c.op).map(|v| v.as_str().unwrap_or("?").to_string()).unwrap_or_default();
                w.push_str(if i == 0 { " where " } else { " and " });
                w.push_str(&format!("{} {op}", c.property));
                if c.op != tierd_store::query::Op::Exists {
                    w.push_str(&format!(" {}", c.value));
                }
            }
            w
        }
        None => format!("{distinct_ids} user(s)"),
    }
}

pub fn format_list(l: &DeletionList) -> String {
    if l.deletions.is_empty() {
        return "no deletion requests\n".into();
    }
    l.deletions
        .iter()
        .map(|d| {
            format!(
                "{}  {}  {}  {}\n",
                d.id,
                d.project,
                what(d.distinct_ids, d.events.as_ref()),
                progress_line(d.state, &d.progress)
            )
        })
        .collect()
}

pub fn format_request(r: &DeletionRequest) -> String {
    let mut out = format!("{}  {}  {}\n", r.id, r.project, what(r.distinct_ids.len(), r.events.as_ref()));
    if !r.distinct_ids.is_empty() {
        out.push_str(&format!("  distinct ids: {}\n", r.distinct_ids.iter().cloned().collect::<Vec<_>>().join(", ")));
    }
    out.push_str(&format!("  accepted at {} ms, covers ingest sequences up to {}\n", r.created_at_ms, r.max_seq));
    out.push_str(&format!("  {}\n", progress_line(r.state, &r.progress)));
    if let Some(ms) = r.progress.started_at_ms {
        out.push_str(&format!("  started at {ms} ms\n"));
    }
    if let Some(ms) = r.progress.finished_at_ms {
        out.push_str(&format!("  finished at {ms} ms\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ID: &str = "01HZY3Q8W6V4B2N7K9M5T1R0CX";

    #[test]
    fn requests_read_well() {
        let user: DeletionRequest = serde_json::from_value(json!({"id": ID, "project": "web",
            "distinct_ids": ["a", "b"], "created_at_ms": 5, "max_seq": 9, "state": "running",
            "progress": {"segments_rewritten": 2, "rows_removed": 7, "bytes_freed": 100, "started_at_ms": 6,
                         "error": "segment X: boom"}}))
        .unwrap();
        assert_eq!(
            format_request(&user),
            format!(
                "{ID}  web  2 user(s)\n  distinct ids: a, b\n  accepted at 5 ms, covers ingest sequences up to 9\n  \
                 running  rewritten 2, retired 0, rows removed 7, bytes freed 100, error: segment X: boom\n  \
                 started at 6 ms\n"
            )
        );
        let list: DeletionList = serde_json::from_value(json!({"deletions": [{"id": ID, "project": "web",
            "distinct_ids": 0, "events": {"event": "Junk", "from_ms": 1, "to_ms": 2,
            "where": [{"property": "os", "op": "eq", "value": "ios"}, {"property": "v", "op": "exists", "value": null}]},
            "created_at_ms": 5, "max_seq": 9, "state": "done", "progress": {"segments_retired": 1}}]}))
        .unwrap();
        assert_eq!(
            format_list(&list),
            format!(
                "{ID}  web  events Junk in [1, 2) where os eq \"ios\" and v exists  \
                 done  rewritten 0, retired 1, rows removed 0, bytes freed 0\n"
            )
        );
        assert_eq!(format_list(&DeletionList { deletions: vec![] }), "no deletion requests\n");
    }

    #[test]
    fn the_commands_parse_as_documented() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "tierd",
            "delete-events",
            "--project",
            "web",
            "--event",
            "Junk",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
            "--where",
            "os = ios",
            "--wait",
            "--timeout-secs",
            "5",
        ])
        .unwrap();
        let crate::cli::Command::DeleteEvents(a) = cli.command else { panic!("not delete-events") };
        assert_eq!((a.from, a.to), (1_767_225_600_000, 1_767_312_000_000));
        assert_eq!(a.conditions.len(), 1);
        assert!(a.wait.wait && a.wait.timeout_secs == 5);
        let e = crate::cli::Cli::try_parse_from(["tierd", "delete-user", "--project", "web"]).unwrap_err();
        assert!(e.to_string().contains("--distinct-id"), "{e}");
        let e = crate::cli::Cli::try_parse_from([
            "tierd",
            "delete-user",
            "--project",
            "web",
            "--distinct-id",
            "a",
            "--timeout-secs",
            "5",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("--wait"), "--timeout-secs needs --wait: {e}");
    }
}
