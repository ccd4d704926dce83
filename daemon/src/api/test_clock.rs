//! Moving the test clock (`POST /v1/admin/test/clock`), a route that exists only when the daemon started with
//! `TIERD_TEST_CLOCK_OFFSET_MS` in its environment: end-to-end tests move time forward instead of sleeping.

use serde::{Deserialize, Serialize};

/// Body of `POST /v1/admin/test/clock`: how far to move the clock forward (it never moves back, so the number is
/// unsigned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestClockRequest {
    pub advance_ms: u64,
}

/// The answer of `POST /v1/admin/test/clock`: the clock's time after the move, and how far ahead of the wall clock
/// it now is (what a restart must start from, so that time does not go back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestClockAnswer {
    pub now_ms: i64,
    pub offset_ms: u64,
}
