//! The client commands, `tierd import | query | pass | gc | move | trash | status | delete-user |
//! delete-events | deletions`: thin, synchronous HTTP clients of a
//! running daemon.
//!
//! They run before any tokio runtime exists, so they use `reqwest::blocking`. What can be decided without the
//! network (batching lines, splitting a JSON array, parsing `--where` and times, formatting the result table,
//! translating a batch index back to a file line) is kept in pure functions next to each command and unit-tested;
//! the functions that talk to the daemon only carry those decisions out. Request and answer bodies are the types
//! of [`crate::api`], the ones the server uses.

pub mod daemon;
mod deletions;
mod import;
mod moves;
mod pass;
mod query;
mod status;
#[cfg(test)]
mod test_server;
mod trash;

pub use daemon::{DaemonArgs, DEFAULT_URL};
pub use deletions::{
    run_delete_events, run_delete_user, run_deletions, DeleteEventsArgs, DeleteUserArgs, DeletionsArgs,
    DeletionsCommand,
};
pub use import::{
    annotate_failed_records, import_retry_policy, parse_retry_after, run_import, split_json_array, ArrayElement, Batch,
    Batcher, ImportArgs, ImportError, ImportReport, Importer, MAX_BATCH_BYTES,
};
pub use moves::{format_moves, run_move, MoveArgs};
pub use pass::{format_report, run_gc, run_pass, GcArgs, PassArgs, PassCommand, PassOptions, PassRunArgs};
pub use query::{
    execute_query, format_table, parse_group_by, parse_time, parse_where, run_query, QueryArgs, QueryError,
};
pub use status::{format_status, run_status, StatusArgs};
pub use trash::{format_list, format_restore, run_trash, TrashArgs, TrashCommand};
