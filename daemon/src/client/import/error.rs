//! Why `tierd import` stopped, and how much of the file made it in before.

use std::io;
use std::ops::RangeInclusive;
use std::time::Duration;

use reqwest::StatusCode;

/// Why an import stopped. Every variant raised after the first batch says how many events were imported before.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("{0}")]
    Setup(String),
    #[error("reading {what}: {source}; {imported_before} events were imported before the error")]
    Read { what: String, imported_before: u64, source: io::Error },
    #[error("the event on line {line} is {bytes} bytes, over the {limit}-byte request limit; nothing after line {line} was sent")]
    EventTooLarge { line: u64, bytes: usize, limit: usize },
    #[error("malformed JSON array at line {line}: {reason}; fix the file or convert it to NDJSON")]
    MalformedArray { line: u64, reason: &'static str },
    #[error("{message}; {imported_before} events were imported before the error")]
    Unreachable { message: String, imported_before: u64 },
    #[error(
        "the daemon rejected the batch of lines {}-{} ({status}): {message}; {}",
        lines.start(), lines.end(), imported_note(*imported_before, *lines.start())
    )]
    Rejected {
        status: StatusCode,
        message: String,
        /// The server's error body, with each `failed_records[]` entry given its file `line`; pretty JSON when the
        /// body was JSON, else the body as received.
        response: String,
        lines: RangeInclusive<u64>,
        imported_before: u64,
    },
    #[error(
        "the daemon answered {status} to the batch of lines {}-{}: {message}; {}",
        lines.start(), lines.end(), imported_note(*imported_before, *lines.start())
    )]
    Server { status: StatusCode, message: String, lines: RangeInclusive<u64>, imported_before: u64 },
    #[error(
        "gave up on the batch of lines {}-{} after retrying for {} s (last: {last}); {}; re-run the import once the \
         daemon accepts writes (re-sent events are deduplicated by $insert_id)",
        lines.start(), lines.end(), waited.as_secs(), imported_note(*imported_before, *lines.start())
    )]
    GaveUp { last: String, waited: Duration, lines: RangeInclusive<u64>, imported_before: u64 },
}

/// How much of the file made it in, for errors that stop an import at the batch starting on `first_line`.
fn imported_note(imported_before: u64, first_line: u64) -> String {
    if imported_before == 0 {
        "no events were imported".to_owned()
    } else {
        format!("{imported_before} events, all from before line {first_line}, were imported")
    }
}
