//! The bound on the memory ingest uses at once: a byte-weighted semaphore over every `/import` request.
//!
//! A request count alone does not bound memory: one 10 KB gzip body decodes to 10 MB. So each request holds
//! permits for the bytes it will hold, taken once before its body is read: its compressed body (its
//! `Content-Length`, or the largest allowed), its decoded body (for gzip, the largest allowed) and the rows' text the
//! parse writes beside it (the body's size and an eighth). It gives back what it no longer needs as it goes: once
//! read, down to the real compressed size; once decoded, the compressed bytes and the unused decode allowance; once
//! encoded, everything but the encoded frames, held until the writer acknowledges them. Taking everything at once
//! means no request ever waits while holding permits, so parallel requests cannot starve each other into timeouts
//! (they queue instead). Nothing in the parse grows with the number of JSON values
//! (`tierd_codecs::parse_batch_rows` counts and refuses as it scans, and builds at most one record's `Value` at a
//! time).
//!
//! Waiting versus refusing: a request that finds no room waits up to `ingest.inflight_wait_ms`, then gets a 503 with
//! Retry-After. A short wait absorbs the bursts of parallel backfill clients (decoding is fast, room comes back
//! within milliseconds) without a round trip; the bound keeps a flood from piling up connections that wait forever.
//! A 503 is what Mixpanel clients already retry with backoff.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use crate::server::config::IngestConfig;

/// The in-flight byte budget of ingest (`ingest.max_inflight_bytes`).
#[derive(Debug)]
pub struct IngestGate {
    semaphore: Arc<Semaphore>,
    capacity: usize,
    wait: Duration,
    /// `ingest.max_days_per_request`, or `hot.max_open_segments` if smaller.
    pub max_days: usize,
    /// The most compressed bytes one body may have (`IngestConfig::max_raw_bytes`).
    pub max_raw_bytes: usize,
}

/// Bytes held under the gate by one request; released when dropped.
#[derive(Debug)]
pub struct Held {
    permit: Option<OwnedSemaphorePermit>,
    gate_capacity: usize,
    semaphore: Arc<Semaphore>,
}

impl IngestGate {
    /// The gate of `config`; `max_open_segments` (`hot.max_open_segments`) caps the days of a request.
    pub fn new(config: &IngestConfig, max_open_segments: usize) -> Self {
        // tokio counts permits in u32 per acquisition; one request at its largest is below that (the config's
        // `ingest::MAX_BYTES_PER_REQUEST`), so the cap only trims a larger `max_inflight_bytes`.
        let capacity = config.inflight_budget().min(u32::MAX as usize);
        Self {
            semaphore: Arc::new(Semaphore::new(capacity)),
            capacity,
            wait: Duration::from_millis(config.inflight_wait_ms),
            max_days: config.max_days(max_open_segments),
            max_raw_bytes: config.max_raw_bytes(),
        }
    }

    /// Holds `bytes` (at least 1, at most the whole budget), waiting up to `ingest.inflight_wait_ms`; else a 503
    /// with Retry-After.
    pub async fn hold(&self, bytes: usize) -> Result<Held, ApiError> {
        let n = bytes.clamp(1, self.capacity) as u32;
        let acquire = self.semaphore.clone().acquire_many_owned(n);
        let permit = match tokio::time::timeout(self.wait, acquire).await {
            Ok(Ok(permit)) => permit,
            // Closed: never, the gate lives as long as the state.
            Ok(Err(_)) | Err(_) => {
                let mut err = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "ingest is busy: {} bytes of requests are being decoded (ingest.max_inflight_bytes); retry shortly",
                        self.capacity
                    ),
                )
                .with_reason("inflight_full");
                err.retry_after_secs = Some(1);
                return Err(err);
            }
        };
        let held = Held { permit: Some(permit), gate_capacity: self.capacity, semaphore: self.semaphore.clone() };
        held.publish();
        Ok(held)
    }
}

impl Held {
    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }

    /// Gives back everything above `bytes` (never grows). Callable from any thread.
    pub fn shrink_to(&mut self, bytes: usize) {
        if let Some(p) = &mut self.permit {
            let keep = bytes.max(1);
            if p.num_permits() > keep {
                drop(p.split(p.num_permits() - keep));
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let in_use = self.gate_capacity.saturating_sub(self.semaphore.available_permits());
        metrics::gauge!("tierd_ingest_inflight_bytes").set(in_use as f64);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.publish();
    }
}
