//! The command line: `tierd serve | import | query | gen | pass | gc | move | trash | status | plan | simulate |
//! catalog`.
//! Parsing and dispatch only:
//! each command is carried out by [`crate::server`], [`crate::client`] or `crate::gen`, none of which depends on
//! this module.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "tierd", version, about = "Storage-cost optimization and tiering daemon for event data")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (embedded default: ./tierd-data, 127.0.0.1:7070, no config needed).
    Serve(crate::server::serve::ServeArgs),
    /// Send a JSON/NDJSON file of Mixpanel events to a running daemon, in batches.
    Import(crate::client::ImportArgs),
    /// Count deduplicated events through a running daemon's query API.
    Query(crate::client::QueryArgs),
    /// Write a realistic Mixpanel-shaped event stream (NDJSON) to stdout or a file.
    Gen(crate::gen::GenArgs),
    /// Run a background pass (reencode, compact, recompress, migrate, promote, gc, retention, deletions) now on a running daemon.
    Pass(crate::client::PassArgs),
    /// Garbage collection now (`--dry-run`: what would go to the trash or stay, and why).
    Gc(crate::client::GcArgs),
    /// Move segments between the hot disk and the cold tier by hand on a running daemon.
    Move(crate::client::MoveArgs),
    /// What garbage collection deleted and still keeps, and putting deleted segments back (`list`, `restore`).
    Trash(crate::client::TrashArgs),
    /// Delete users' events (GDPR/CCPA erasure) on a running daemon: hidden at once, removed from storage by the
    /// deletions pass; events they send later are kept.
    DeleteUser(crate::client::DeleteUserArgs),
    /// Delete the events of one name (or matching `--where`) in a time window, e.g. a broken release's junk events.
    DeleteEvents(crate::client::DeleteEventsArgs),
    /// Deletion requests of a running daemon and their progress (`list`, `show ID`).
    Deletions(crate::client::DeletionsArgs),
    /// The scheduler of a running daemon: each pass's schedule, next and last run, outcome; config reloads.
    Status(crate::client::StatusArgs),
    /// What the tiering policy would do now and the monthly bill before and after, in USD; moves nothing.
    Plan(crate::plan::PlanArgs),
    /// Replay a workload through all-hot, age-only and tierd's policy offline: cost, read latency, bytes moved.
    Simulate(crate::simulate::SimulateArgs),
    /// The catalog of a stopped daemon: `rebuild` writes it anew from the segment files.
    Catalog(crate::catalog::CatalogArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => crate::server::serve::run(args),
        Command::Import(args) => crate::client::run_import(args),
        Command::Query(args) => crate::client::run_query(args),
        Command::Gen(args) => crate::gen::run(args),
        Command::Pass(args) => crate::client::run_pass(args),
        Command::Gc(args) => crate::client::run_gc(args),
        Command::Move(args) => crate::client::run_move(args),
        Command::Trash(args) => crate::client::run_trash(args),
        Command::DeleteUser(args) => crate::client::run_delete_user(args),
        Command::DeleteEvents(args) => crate::client::run_delete_events(args),
        Command::Deletions(args) => crate::client::run_deletions(args),
        Command::Status(args) => crate::client::run_status(args),
        Command::Plan(args) => crate::plan::run(args),
        Command::Simulate(args) => crate::simulate::run(args),
        Command::Catalog(args) => crate::catalog::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tierd: error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-separated, leaving out a cause whose text the message already carries (typed
/// errors name their source in their own message, and anyhow would print it again).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let io = std::io::Error::other("disk on fire");
        let e = Err::<(), _>(tierd_store::StoreError::Io { path: "/x".into(), source: io })
            .context("cannot open the catalog")
            .unwrap_err();
        assert_eq!(super::error_chain(&e), "cannot open the catalog: I/O error on /x: disk on fire");
        let plain = Err::<(), _>(std::io::Error::other("refused")).context("cannot connect").unwrap_err();
        assert_eq!(super::error_chain(&plain), "cannot connect: refused");
    }
}
