//! `POST /v1/admin/test/clock` with `{"advance_ms":N}`: moves the test clock forward and answers the new time and
//! offset ([`TestClockAnswer`]). Routed only when `serve` runs on an [`OffsetClock`], which it does only when the
//! process started with `TIERD_TEST_CLOCK_OFFSET_MS` in its environment; otherwise the path is an unknown endpoint
//! (404), like any other. End-to-end tests use it to wait out lease TTLs and grace periods without sleeping.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use tierd_store::clock::OffsetClock;
use tierd_store::Clock;

use super::error::{parse_body, ApiError};
use crate::api::{TestClockAnswer, TestClockRequest};

/// The test clock's route, for a router of any state: it carries the clock itself, so it exists only with one.
pub fn routes<S: Clone + Send + Sync + 'static>(clock: OffsetClock) -> Router<S> {
    Router::new().route("/v1/admin/test/clock", post(advance)).with_state(clock)
}

async fn advance(State(clock): State<OffsetClock>, body: Bytes) -> Result<Json<TestClockAnswer>, ApiError> {
    let req: TestClockRequest = parse_body(&body, "bad test clock request")?;
    let offset_ms = clock.advance_ms(req.advance_ms);
    let now_ms = clock.now_ms();
    tracing::warn!(advance_ms = req.advance_ms, offset_ms, now_ms, "test clock moved forward");
    Ok(Json(TestClockAnswer { now_ms, offset_ms }))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    async fn post(router: &Router, body: &str) -> (StatusCode, Value) {
        let req = Request::post("/v1/admin/test/clock").body(Body::from(body.to_string())).unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn advancing_moves_the_shared_clock_and_answers_the_new_time_and_offset() {
        let clock = OffsetClock::new(1_000);
        let router: Router = routes(clock.clone());
        let before = clock.now_ms();
        let (s, v) = post(&router, r#"{"advance_ms": 60000}"#).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["offset_ms"], 61_000, "{v}");
        assert_eq!(clock.offset_ms(), 61_000);
        let now = v["now_ms"].as_i64().unwrap();
        assert!(now >= before + 60_000 && now <= clock.now_ms(), "{before} {now}");
    }

    #[tokio::test]
    async fn the_clock_cannot_move_back_and_bad_bodies_are_json_400s() {
        let clock = OffsetClock::new(5);
        let router: Router = routes(clock.clone());
        for body in [r#"{"advance_ms": -1}"#, r#"{"advance_ms": 1, "offset_ms": 0}"#, "{}", "nope"] {
            let (s, v) = post(&router, body).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
            assert_eq!(v["code"], 400, "{body}: {v}");
            assert!(v["error"].as_str().unwrap().starts_with("bad test clock request: "), "{body}: {v}");
        }
        assert_eq!(clock.offset_ms(), 5, "unchanged");
    }
}
