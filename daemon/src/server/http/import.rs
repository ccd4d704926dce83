//! `POST /import?project=NAME`: Mixpanel's batch ingest, acknowledged only once durable.
//!
//! The events are the body (a JSON array or NDJSON, plain or gzip), or a `data` parameter as Mixpanel's SDKs send
//! it: the field of a form-encoded body (`import_data` of the Python SDK, `import_batch` of the Node SDK) or of the
//! query (`GET /import?data=`, the Node SDK's `import`). See [`super::ingest`] for the pipeline, which `/track`
//! shares. A body is answered in Mixpanel's JSON shape (`code`, `num_records_imported`, `status`); `data` in the
//! dialect its SDKs read ([`super::legacy`]).
//!
//! `strict=1` (the default): one invalid record refuses the batch, with every invalid record in `failed_records`,
//! and nothing is written. `strict=0`: the invalid records are left out and the others imported; the answer is then
//! Mixpanel's partial success, a 400 with `failed_records` and `num_records_imported`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::ingest::{ingest, Endpoint, IngestRequest, Ingested};
use super::json::SortedJson;
use super::legacy;
use super::state::AppState;
use crate::api::ImportAnswer;

pub async fn import(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let outcome = ingest(&state, IngestRequest::new(Endpoint::Import, request)).await;
    if outcome.data_dialect {
        return legacy::answer(outcome);
    }
    match outcome.result {
        Ok(done) if done.rejected.is_empty() => {
            SortedJson(ImportAnswer { code: 200, num_records_imported: done.imported, status: "OK".into() })
                .into_response()
        }
        Ok(done) => partial(done).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The answer to a `strict=0` batch with invalid records: Mixpanel's partial success, a 400 that lists them and
/// says how many records were imported.
pub fn partial(done: Ingested) -> ApiError {
    let (failed, imported) = (done.rejected.len(), done.imported);
    let mut err = ApiError::new(
        StatusCode::BAD_REQUEST,
        format!(
            "{failed} of the batch's {} records are invalid and were left out (strict=0); the other {imported} were \
             imported",
            failed as u64 + imported
        ),
    )
    .with_reason("invalid_records");
    err.failed_records = Some(done.rejected);
    err.num_records_imported = Some(imported);
    err
}
