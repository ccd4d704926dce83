//! The `[cold]` section: where the cold tier lives and how requests to it are made.

use serde::Deserialize;

use crate::error::StoreError;

const MIB: u64 = 1024 * 1024;
/// S3's smallest part (every part but the last).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;

/// The cold tier's object store. `Debug` hides the secret key.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColdConfig {
    /// `""` = `file://DATA_DIR/cold` (the embedded default); `file:///abs/path`; `s3://bucket/prefix`; `memory://`
    /// (lost on exit: tests only); `gs://bucket/prefix` and `az://container/prefix` (credentials from the environment
    /// variables object_store documents for them).
    pub url: String,
    /// S3-compatible endpoint, e.g. `http://127.0.0.1:9000` (else AWS, or `AWS_ENDPOINT`).
    pub endpoint: Option<String>,
    /// S3 region (else `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// S3 credentials (else `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` and the other usual AWS sources).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow plain-HTTP endpoints (local servers).
    pub allow_http: bool,
    /// Objects at least this big are uploaded in parts.
    pub multipart_threshold_bytes: u64,
    /// Size of each part but the last (S3: 5 MiB to 5 GiB; raised automatically to stay within 10,000 parts).
    pub part_size_bytes: u64,
    /// Retries of a request that failed transiently (5xx, timeout, connection error); 0 = no retry.
    pub max_retries: u32,
    /// First retry backoff; doubles each retry (with jitter), up to 100 times this.
    pub retry_backoff_ms: u64,
    /// Timeout of one HTTP request, body included.
    pub request_timeout_secs: u64,
    /// How a move checks the object it uploaded before committing it ([`VerifyMode`]).
    pub verify: VerifyMode,
}

/// How a move checks an uploaded copy before the catalog points to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyMode {
    /// By the server's own checksum where it gives one: an S3 ETag equal to the MD5 tierd computed (of the bytes
    /// of a single PUT, or S3's MD5-of-part-MD5s of a multipart upload) proves the server received exactly these
    /// bytes; a HEAD then checks the object is there with its size. Where the ETag is anything else (`file://`,
    /// `memory://`, GCS, Azure, S3 with SSE-KMS, a retried upload): read back whole, as `read_back`.
    #[default]
    Auto,
    /// Always read the whole object back and check its size and crc32c (twice the object-store traffic).
    ReadBack,
}

impl Default for ColdConfig {
    /// Multipart from 100 MiB (where AWS's guidance starts to consider it; most segments are tens of MiB and go in
    /// one request, which measured faster than parts on the local S3-compatible server, BENCHMARKS.md "Cold
    /// tier") in 8 MiB parts (as the AWS CLI's 8 MiB chunks) that upload concurrently. Five retries starting at
    /// 100 ms ride out a few seconds of server trouble. 60 s per request lets an 8 MiB part through a link as slow
    /// as 150 KiB/s.
    fn default() -> Self {
        Self {
            url: String::new(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
            multipart_threshold_bytes: 100 * MIB,
            part_size_bytes: 8 * MIB,
            max_retries: 5,
            retry_backoff_ms: 100,
            request_timeout_secs: 60,
            verify: VerifyMode::Auto,
        }
    }
}

impl std::fmt::Debug for ColdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdConfig")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("allow_http", &self.allow_http)
            .field("multipart_threshold_bytes", &self.multipart_threshold_bytes)
            .field("part_size_bytes", &self.part_size_bytes)
            .field("max_retries", &self.max_retries)
            .field("retry_backoff_ms", &self.retry_backoff_ms)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("verify", &self.verify)
            .finish()
    }
}

impl ColdConfig {
    /// Checks every key without any I/O; errors name the key (`cold.url`, ...).
    pub fn validate(&self) -> Result<(), StoreError> {
        let invalid = |key, message: String| Err(StoreError::Config { key, message });
        let scheme = super::backend::Scheme::of(&self.url)?;
        if !scheme.is_s3() {
            let s3_only = [
                ("cold.endpoint", self.endpoint.is_some()),
                ("cold.region", self.region.is_some()),
                ("cold.access_key_id", self.access_key_id.is_some()),
                ("cold.secret_access_key", self.secret_access_key.is_some()),
            ];
            if let Some((key, _)) = s3_only.iter().find(|(_, set)| *set) {
                return invalid(key, format!("applies to s3:// URLs only, and cold.url is {:?}", self.url));
            }
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return invalid(
                "cold.access_key_id",
                "set both cold.access_key_id and cold.secret_access_key, or neither".into(),
            );
        }
        if let Some(endpoint) = &self.endpoint {
            match url::Url::parse(endpoint) {
                Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {
                    if u.scheme() == "http" && !self.allow_http {
                        return invalid(
                            "cold.endpoint",
                            format!("{endpoint:?} is plain HTTP: set cold.allow_http = true"),
                        );
                    }
                }
                _ => return invalid("cold.endpoint", format!("{endpoint:?} is not an http:// or https:// URL")),
            }
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size_bytes) {
            return invalid(
                "cold.part_size_bytes",
                format!(
                    "{} is outside S3's part sizes, {MIN_PART_SIZE} (5 MiB) to {MAX_PART_SIZE} (5 GiB)",
                    self.part_size_bytes
                ),
            );
        }
        if self.multipart_threshold_bytes == 0 {
            return invalid("cold.multipart_threshold_bytes", "must be at least 1 byte".into());
        }
        if self.request_timeout_secs == 0 {
            return invalid("cold.request_timeout_secs", "must be at least 1 second".into());
        }
        if self.max_retries > 100 {
            return invalid("cold.max_retries", format!("{} is more than 100", self.max_retries));
        }
        if self.retry_backoff_ms > 60_000 {
            return invalid("cold.retry_backoff_ms", format!("{} is more than a minute", self.retry_backoff_ms));
        }
        Ok(())
    }
}
