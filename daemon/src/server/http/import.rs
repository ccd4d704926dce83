//! `POST /import?project=NAME`: Mixpanel-shaped ingest, acknowledged only once durable.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use serde::Deserialize;
use tierd_codecs::{parse_batch_rows, BatchError, RowBatch};
use tierd_store::hot::IngestBatch;
use tierd_store::layout::{day_of_ms, validate_project};

use super::error::ApiError;
use super::json::SortedJson;
use super::state::AppState;
use crate::api::ImportAnswer;
use crate::server::error::ServerError;
use tierd_store::clock::Stopwatch;

#[derive(Debug, Deserialize)]
pub struct ImportParams {
    project: Option<String>,
}

const ACCEPTED_TYPES: &[&str] = &["application/json", "application/x-ndjson", "application/jsonl", "text/plain"];

pub async fn import(
    State(state): State<Arc<AppState>>,
    params: Result<Query<ImportParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<SortedJson<ImportAnswer>, ApiError> {
    let started = Stopwatch::start();
    let result = match params {
        Ok(Query(params)) => import_inner(&state, params, &headers, body).await,
        Err(rejection) => Err(ApiError::from_rejection(rejection)),
    };
    match &result {
        Ok((project, events, bytes)) => {
            metrics::counter!("tierd_ingest_events_total", "project" => project.clone()).increment(*events);
            metrics::counter!("tierd_ingest_bytes_total").increment(*bytes);
            metrics::counter!("tierd_ingest_batches_total").increment(1);
            metrics::histogram!("tierd_ingest_ack_seconds").record(started.elapsed().as_secs_f64());
        }
        Err(e) => {
            metrics::counter!("tierd_ingest_rejected_total", "reason" => e.reason()).increment(1);
        }
    }
    let (_, events, _) = result?;
    Ok(SortedJson(ImportAnswer { code: 200, num_records_imported: events, status: "OK".into() }))
}

async fn import_inner(
    state: &AppState,
    params: ImportParams,
    headers: &HeaderMap,
    body: Body,
) -> Result<(String, u64, u64), ApiError> {
    let project = params.project.unwrap_or_else(|| "default".to_string());
    validate_project(&project).map_err(ApiError::bad_request)?;
    check_content_type(headers)?;
    let limit = state.limits.max_bytes;
    let gzip =
        match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase()) {
            None => false,
            Some(e) if e.is_empty() || e == "identity" => false,
            Some(e) if e == "gzip" || e == "x-gzip" => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "unsupported Content-Encoding {other:?}; send the body plain or gzip-compressed"
                )))
            }
        };
    let too_large = move || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is over the limit of {limit} bytes (uncompressed) per request"),
        )
        .with_reason("too_large")
    };
    let gate = &state.ingest;
    let raw_limit = if gzip { gate.max_raw_bytes } else { limit };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<usize>().ok());
    // Bytes held under `ingest.max_inflight_bytes` from here until the writer acknowledges (see `ingest_gate`): the
    // most this request will need, taken once (a request never waits while holding), then given back step by step.
    // A body declared over the limit is still read up to it before the 413 (as before): answering before reading
    // anything makes clients that are still sending see a reset connection instead of the answer.
    let raw_weight = declared.unwrap_or(raw_limit).min(raw_limit);
    let mut held = gate.hold(raw_weight + parse_weight(if gzip { limit } else { raw_weight })).await?;
    let raw = axum::body::to_bytes(body, raw_limit).await.map_err(|_| too_large())?;
    // Decoding, parsing and encoding are CPU work of up to a few hundred milliseconds: off the async workers.
    let (bytes, mut held) = if gzip {
        held.shrink_to(raw.len() + parse_weight(limit));
        let decoded = tokio::task::spawn_blocking(move || {
            let out = gunzip(&raw, limit).map_err(|e| e.unwrap_or_else(too_large))?;
            drop(raw);
            held.shrink_to(parse_weight(out.len()));
            Ok::<_, ApiError>((bytes::Bytes::from(out), held))
        });
        decoded.await.map_err(|e| ApiError::from(ServerError::joined("import", e)))??
    } else {
        held.shrink_to(parse_weight(raw.len()));
        (raw, held)
    };
    let limits = state.limits;
    let max_days = gate.max_days;
    let encode_project = project.clone();
    let work = tokio::task::spawn_blocking(move || {
        let rows = parse_batch_rows(&bytes, &limits).map_err(batch_error)?;
        check_days(&rows, max_days)?;
        let batch = IngestBatch::encode_rows(encode_project, &rows);
        drop(rows);
        // Until the writer acknowledges, the request holds its encoded frames.
        held.shrink_to(batch.frame_bytes() as usize);
        Ok::<_, ApiError>((batch, bytes.len() as u64, held))
    });
    let (batch, n_bytes, held) = work.await.map_err(|e| ApiError::from(ServerError::joined("import", e)))??;
    let appended = state.hot.append(batch).await?;
    drop(held);
    Ok((project, appended.events, n_bytes))
}

/// What parsing a decoded body of `len` bytes holds: the body, and the rows' text the parse writes beside it
/// (reserved up front at the body's size and an eighth).
fn parse_weight(len: usize) -> usize {
    2 * len + len / 8
}

/// Decodes a gzip body of at most `limit` decoded bytes. `Err(None)`: over the limit; `Err(Some)`: not gzip.
/// Public (re-exported by [`super`]) for the ingest fuzz target (`tests/fuzz`), which decodes bodies as this handler does.
pub fn gunzip(raw: &[u8], limit: usize) -> Result<Vec<u8>, Option<ApiError>> {
    // The trailer's ISIZE (decoded size mod 2^32 of the last member) sizes the buffer: a hint only, capped by the
    // limit, so a body that decodes to 10 MB takes 10 MB rather than the 16 MB of a doubling buffer.
    let hint =
        raw.len().checked_sub(4).map_or(0, |at| u32::from_le_bytes(raw[at..].try_into().expect("four bytes")) as usize);
    let mut out = Vec::with_capacity(hint.min(limit + 1));
    let mut decoder = flate2::read::MultiGzDecoder::new(raw).take(limit as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| Some(ApiError::bad_request(format!("body is not valid gzip: {e}"))))?;
    if out.len() > limit {
        return Err(None);
    }
    Ok(out)
}

/// Refuses a request whose events fall on more than `max_days` UTC days (`ingest.max_days_per_request`): each day
/// is a segment file to create, fsync and keep open.
fn check_days(rows: &RowBatch, max_days: usize) -> Result<(), ApiError> {
    let days: BTreeSet<i32> = rows.iter().map(|r| day_of_ms(r.time_ms())).collect();
    if days.len() > max_days {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request has events on {} different UTC days, over the limit of {max_days} days per request \
                 (ingest.max_days_per_request); send events sorted by time, or split the request by day",
                days.len()
            ),
        )
        .with_reason("too_many_days"));
    }
    Ok(())
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(v) = headers.get(header::CONTENT_TYPE) else { return Ok(()) };
    let text = v.to_str().unwrap_or("");
    let mime = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if ACCEPTED_TYPES.contains(&mime.as_str()) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "unsupported Content-Type {text:?}; send application/json (an array of events) or application/x-ndjson"
        )))
    }
}

fn batch_error(e: BatchError) -> ApiError {
    match e {
        BatchError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).with_reason("too_large")
        }
        BatchError::TooManyEvents { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).with_reason("too_many_events")
        }
        BatchError::Invalid(records) => {
            let mut err = ApiError::bad_request(BatchError::Invalid(records.clone()).to_string());
            // A per-event limit names the reason (the first record refused by one), else any invalid record.
            err.reason_label = Some(records.iter().find_map(|r| r.limit()).unwrap_or("invalid_records"));
            err.failed_records = Some(records);
            err
        }
        other => ApiError::bad_request(other.to_string()),
    }
}
