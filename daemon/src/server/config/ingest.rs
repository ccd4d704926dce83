//! `[ingest]`'s bounds on what one request, and all requests together, may cost: per-request and per-event limits
//! (`BatchLimits`, checked by `tierd_codecs::parse_batch_rows`), the days one request may touch, and the bytes being
//! decoded at once (`server::http::import`). Opened once at start (a reload that changes `[ingest]` is refused).

use tierd_codecs::BatchLimits;

use super::IngestConfig;

/// The largest `ingest.max_bytes_per_request`: a request at its largest ([`IngestConfig::max_request_weight`], about
/// 3.25 times this) must fit the in-flight gate, whose semaphore counts at most `u32::MAX` bytes, and the sums of
/// sizes must not overflow. (Fuzzing the config found that `max_bytes_per_request = 9223372036854775807` passed
/// validation and then overflowed `max_request_weight`.)
pub const MAX_BYTES_PER_REQUEST: usize = 1 << 30;

impl IngestConfig {
    /// The days one request may touch: `max_days_per_request`, and never more than the segments that may be open
    /// (`hot.max_open_segments`), so that a request always fits (the smaller applies; a config lowering only
    /// `hot.max_open_segments` stays valid).
    pub fn max_days(&self, max_open_segments: usize) -> usize {
        self.max_days_per_request.min(max_open_segments.max(1))
    }

    /// The codec's limits of one request.
    pub fn batch_limits(&self) -> BatchLimits {
        BatchLimits {
            max_events: self.max_events_per_request,
            max_bytes: self.max_bytes_per_request,
            max_properties: self.max_properties_per_event,
            max_event_bytes: self.max_event_bytes,
            max_property_name_bytes: self.max_property_name_bytes,
        }
    }

    /// The most compressed bytes a request body may have: a gzip body is never larger than what it decodes to,
    /// except for tiny or incompressible ones, hence the slack.
    pub fn max_raw_bytes(&self) -> usize {
        self.max_bytes_per_request + self.max_bytes_per_request / 8 + 1024
    }

    /// What the in-flight semaphore must hold for one request at its largest: its compressed body, its decoded
    /// body and the rows' text (an eighth more than the body).
    pub fn max_request_weight(&self) -> usize {
        self.max_raw_bytes() + 2 * self.max_bytes_per_request + self.max_bytes_per_request / 8
    }

    /// The in-flight budget in force: `max_inflight_bytes`, raised to one request at its largest if smaller (so a
    /// config that raises only `max_bytes_per_request` stays valid and every allowed request can be served).
    pub fn inflight_budget(&self) -> usize {
        self.max_inflight_bytes.max(self.max_request_weight())
    }

    /// The checks of the keys above: (key, what is wrong).
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
        let at_least = |key, min: usize, got: usize| {
            if got < min {
                Err((key, format!("must be at least {min}, got {got}")))
            } else {
                Ok(())
            }
        };
        if self.max_bytes_per_request > MAX_BYTES_PER_REQUEST {
            return Err((
                "ingest.max_bytes_per_request",
                format!(
                    "must be at most {MAX_BYTES_PER_REQUEST} (1 GiB), got {}: a request at its largest must fit the \
                     in-flight gate (4 GiB)",
                    self.max_bytes_per_request
                ),
            ));
        }
        at_least("ingest.max_properties_per_event", 3, self.max_properties_per_event)?;
        at_least("ingest.max_event_bytes", 64, self.max_event_bytes)?;
        at_least("ingest.max_property_name_bytes", 16, self.max_property_name_bytes)?;
        at_least("ingest.max_days_per_request", 1, self.max_days_per_request)?;
        at_least("ingest.max_events_per_track_request", 1, self.max_events_per_track_request)?;
        at_least("ingest.max_inflight_bytes", 1024 * 1024, self.max_inflight_bytes)?;
        Ok(())
    }
}
