//! `POST /import?project=NAME`: Mixpanel-shaped ingest, acknowledged only once durable.

use std::io::Read;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use serde::Deserialize;
use tierd_codecs::{parse_batch_rows, BatchError};
use tierd_store::hot::IngestBatch;
use tierd_store::layout::validate_project;

use super::error::ApiError;
use super::json::SortedJson;
use super::state::AppState;
use crate::api::ImportAnswer;
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
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is over the limit of {limit} bytes (uncompressed) per request"),
        )
    };
    // A gzip body is never larger than what it decodes to, except for tiny or incompressible ones: allow slack.
    let raw_limit = if gzip { limit + limit / 8 + 1024 } else { limit };
    let raw = axum::body::to_bytes(body, raw_limit).await.map_err(|_| too_large())?;
    let bytes = if gzip {
        let mut out = Vec::new();
        let mut decoder = flate2::read::MultiGzDecoder::new(&raw[..]).take(limit as u64 + 1);
        decoder.read_to_end(&mut out).map_err(|e| ApiError::bad_request(format!("body is not valid gzip: {e}")))?;
        if out.len() > limit {
            return Err(too_large());
        }
        bytes::Bytes::from(out)
    } else {
        raw
    };
    let n_bytes = bytes.len() as u64;
    let rows = parse_batch_rows(&bytes, &state.limits).map_err(batch_error)?;
    let batch = IngestBatch::encode_rows(project.clone(), &rows);
    let appended = state.hot.append(batch).await?;
    Ok((project, appended.events, n_bytes))
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
        BatchError::TooLarge { .. } | BatchError::TooManyEvents { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        BatchError::Invalid(records) => {
            let mut err = ApiError::bad_request(BatchError::Invalid(records.clone()).to_string());
            err.failed_records = Some(records);
            err
        }
        other => ApiError::bad_request(other.to_string()),
    }
}
