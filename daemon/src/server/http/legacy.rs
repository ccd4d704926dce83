//! Answers in the dialect of Mixpanel's `data` parameter, which its SDKs read: `/track` always, `/import` when the
//! events came in `data` (a form or the query).
//!
//! With `verbose=1`: `{"status":1,"error":null}` once the batch is durable, else `{"status":0,"error":"..."}` (plus,
//! when records were invalid, tierd's `failed_records` and how many were imported). Without it: the body `1` or
//! `0`, as the Node SDK expects (it checks for exactly `1`). The HTTP status is the one the JSON dialect would have
//! (200, 400, 413, 503 with Retry-After, ...), so that proxies and retrying clients see what happened.
//!
//! When a form body could not be read (too large, ingest busy), whether it asked for `verbose` is unknown: the
//! answer is then the verbose one, which a verbose client needs (the Python SDK reads `status` from a JSON object)
//! and which a non-verbose client reads as "not `1`", a failure, as it should.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tierd_codecs::RecordError;

use super::error::ApiError;
use super::ingest::{Ingested, Outcome};
use super::json::SortedJson;

/// The verbose answer.
#[derive(Debug, Serialize)]
struct Verbose {
    /// 1: every event of the request is durable; 0: not.
    status: u8,
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_records: Option<Vec<RecordError>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_records_imported: Option<u64>,
}

/// The answer to `outcome` in the `data` dialect.
pub fn answer(outcome: Outcome) -> Response {
    let verbose = outcome.verbose.unwrap_or(true);
    let error = match outcome.result {
        Ok(Ingested { rejected, .. }) if rejected.is_empty() => {
            return if verbose {
                let ok = Verbose { status: 1, error: None, failed_records: None, num_records_imported: None };
                SortedJson(ok).into_response()
            } else {
                plain(StatusCode::OK, "1")
            };
        }
        Ok(done) => super::import::partial(done),
        Err(e) => e,
    };
    failure(error, verbose)
}

/// A refused request in this dialect.
pub fn failure(e: ApiError, verbose: bool) -> Response {
    let mut resp = if verbose {
        let body = Verbose {
            status: 0,
            error: Some(e.message),
            failed_records: e.failed_records,
            num_records_imported: e.num_records_imported,
        };
        (e.status, SortedJson(body)).into_response()
    } else {
        plain(e.status, "0")
    };
    if let Some(secs) = e.retry_after_secs {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(challenge) = e.challenge {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    resp
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}
