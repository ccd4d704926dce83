//! The client commands, `tierd import` and `tierd query`: thin, synchronous HTTP clients of a running daemon.
//!
//! They run before any tokio runtime exists, so they use `reqwest::blocking`. What can be decided without the
//! network (batching lines, splitting a JSON array, parsing `--where` and times, formatting the result table,
//! translating a batch index back to a file line) is kept in pure functions next to each command and unit-tested;
//! the functions that talk to the daemon only carry those decisions out.

mod import;
mod moves;
mod pass;
mod query;
#[cfg(test)]
mod test_server;
mod trash;

use std::time::Duration;

pub use import::{
    annotate_failed_records, parse_retry_after, run_import, split_json_array, ArrayElement, Batch, Batcher, ImportArgs,
    ImportError, ImportReport, Importer, RetryPolicy, MAX_BATCH_BYTES,
};
pub use moves::{format_moves, run_move, MoveArgs};
pub use pass::{format_report, run_gc, run_pass, GcArgs, PassArgs, PassCommand, PassRunArgs};
pub use query::{
    execute_query, format_table, parse_group_by, parse_time, parse_where, run_query, QueryArgs, QueryError,
    QueryRequest, QueryResponse, QueryRow, WhereClause,
};
pub use trash::{format_list, format_restore, run_trash, TrashArgs, TrashCommand};

/// Where the daemon listens unless `--url` or `TIERD_URL` says otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7070";

/// The URL of `path` on the daemon at `base` (`base` may end in `/` and may carry a path prefix).
fn endpoint(base: &str, path: &str) -> Result<reqwest::Url, String> {
    let joined = format!("{}{}", base.trim_end_matches('/'), path);
    let url = reqwest::Url::parse(&joined).map_err(|e| format!("invalid daemon URL `{base}`: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "invalid daemon URL `{base}`: only http:// is supported (the client is built without TLS)"
        ));
    }
    Ok(url)
}

fn http_client(timeout: Duration) -> reqwest::Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder().connect_timeout(Duration::from_secs(5)).timeout(timeout).build()
}

/// What to tell the user when a request could not be sent at all.
fn unreachable_message(base: &str, err: &reqwest::Error) -> String {
    let cause = root_cause(err);
    if err.is_connect() {
        format!(
            "no tierd daemon answers at {base} ({cause}); start one with `tierd serve`, or point --url / TIERD_URL \
             at a running daemon"
        )
    } else if err.is_timeout() {
        format!("the daemon at {base} did not answer in time ({cause})")
    } else {
        format!("request to the daemon at {base} failed: {cause}")
    }
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err;
    while let Some(source) = last.source() {
        last = source;
    }
    last.to_string()
}

/// The human part of an error response: its `error` or `message` field, else the body itself (shortened).
fn server_message(body: &str) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(body) {
        for key in ["error", "message"] {
            if let Some(serde_json::Value::String(s)) = map.get(key) {
                return s.clone();
            }
        }
    }
    let body = body.trim();
    match body.char_indices().nth(500) {
        Some((cut, _)) => format!("{}...", &body[..cut]),
        None if body.is_empty() => "(empty response body)".to_owned(),
        None => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_joins_base_and_path() {
        assert_eq!(endpoint("http://127.0.0.1:7070", "/v1/query").unwrap().as_str(), "http://127.0.0.1:7070/v1/query");
        assert_eq!(endpoint("http://h:1/tierd/", "/import").unwrap().as_str(), "http://h:1/tierd/import");
        assert!(endpoint("127.0.0.1:7070", "/import").is_err());
        assert!(endpoint("https://example.com", "/import").unwrap_err().contains("TLS"));
    }

    #[test]
    fn server_message_prefers_the_error_field() {
        assert_eq!(server_message(r#"{"code":400,"error":"bad time","status":"Bad Request"}"#), "bad time");
        assert_eq!(server_message(r#"{"message":"nope"}"#), "nope");
        assert_eq!(server_message("plain failure\n"), "plain failure");
        assert_eq!(server_message(""), "(empty response body)");
        assert!(server_message(&"x".repeat(2_000)).ends_with("..."));
    }

    #[test]
    fn refused_connection_says_how_to_start_a_daemon() {
        // Bind then drop a listener: the port is free and nothing answers on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let err = http_client(Duration::from_secs(5)).unwrap().get(&base).send().unwrap_err();
        let message = unreachable_message(&base, &err);
        assert!(message.contains(&base) && message.contains("tierd serve"), "{message}");
    }
}
