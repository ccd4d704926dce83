//! Ingest (`POST /import`) and the one shape of every error answer.

use serde::{Deserialize, Serialize};
use tierd_codecs::RecordError;

/// The answer of `POST /import` once the batch is durable (Mixpanel's shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportAnswer {
    /// 200.
    pub code: u16,
    pub num_records_imported: u64,
    /// `OK`.
    pub status: String,
}

/// Every error answer: `{"code","error","status"}`, plus `failed_records` for a rejected import batch. Clients read
/// `error` (see `client::daemon::server_message`, which also copes with answers from something else than tierd).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorBody {
    /// The HTTP status code.
    pub code: u16,
    /// What was wrong, for a human.
    pub error: String,
    /// The records that made an import batch invalid, each with its `index` in the batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_records: Option<Vec<RecordError>>,
    /// With `failed_records` of a `strict=0` import: how many of the batch's records were imported (Mixpanel's
    /// partial success).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_records_imported: Option<u64>,
    /// The status code's reason phrase.
    pub status: String,
}
