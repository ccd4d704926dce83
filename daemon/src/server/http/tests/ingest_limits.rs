//! Hostile `/import` bodies hit a limit with a clear JSON error, and the next normal import is served (issue 12:
//! bound every resource).

use std::io::Write;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tierd_codecs::BatchLimits;
use tierd_store::hot::HotConfig;

use super::{app, app_with, call, events, post, total, T0_MS};
use crate::server::config::IngestConfig;
use crate::server::http::IngestGate;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn gzip_import(body: Vec<u8>) -> Request<Body> {
    Request::post("/import?project=default").header("content-encoding", "gzip").body(Body::from(body)).unwrap()
}

/// Events at one per day from `T0_MS`, over `days` days.
fn events_on_days(days: usize) -> String {
    let v: Vec<Value> = (0..days)
        .map(|i| json!({"event": "E", "properties": {"time": T0_MS - i as i64 * 86_400_000, "distinct_id": i}}))
        .collect();
    serde_json::to_string(&v).unwrap()
}

#[tokio::test]
async fn a_gzip_of_five_million_zeros_is_refused_by_count_and_the_next_import_is_served() {
    let app = app(BatchLimits::default());
    // The body: 10 MB of `[0,0,...]` in a few KB of gzip.
    let zeros = format!("[{}0]", "0,".repeat(4_999_999));
    let body = gzip(zeros.as_bytes());
    assert!(body.len() < 50_000, "{}", body.len());
    let (s, _, v) = call(&app, gzip_import(body)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["code"], 413);
    assert_eq!(v["error"], "request has 5000000 events, over the limit of 2000 events per request");
    let (s, _, v) = call(&app, post("/import", None, events(3))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(total(&app).await, 3);
}

#[tokio::test]
async fn a_full_inflight_budget_answers_503_with_retry_after_then_serves_again() {
    let ingest = IngestConfig { max_inflight_bytes: 64 * 1024 * 1024, inflight_wait_ms: 50, ..IngestConfig::default() };
    let gate = IngestGate::new(&ingest, 256);
    // Another request holds everything.
    let held = gate.hold(ingest.max_inflight_bytes).await.unwrap();
    let app = app_with(BatchLimits::default(), Some(gate), HotConfig::default());
    let (s, headers, v) = call(&app, post("/import", None, events(2))).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(headers["retry-after"], "1");
    assert!(v["error"].as_str().unwrap().contains("ingest.max_inflight_bytes"), "{v}");
    assert_eq!(total(&app).await, 0, "nothing of a refused request is written");
    drop(held);
    let (s, _, v) = call(&app, post("/import", None, events(2))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(total(&app).await, 2);
}

#[tokio::test]
async fn a_request_waits_for_room_within_the_bound() {
    let ingest =
        IngestConfig { max_inflight_bytes: 64 * 1024 * 1024, inflight_wait_ms: 10_000, ..IngestConfig::default() };
    let gate = IngestGate::new(&ingest, 256);
    let held = gate.hold(ingest.max_inflight_bytes).await.unwrap();
    let app = app_with(BatchLimits::default(), Some(gate), HotConfig::default());
    let request = tokio::spawn({
        let router = app.router.clone();
        async move {
            use tower::ServiceExt;
            router.oneshot(post("/import", None, events(2))).await.unwrap().status()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!request.is_finished(), "the request waits while the budget is held");
    drop(held);
    assert_eq!(request.await.unwrap(), StatusCode::OK);
    assert_eq!(total(&app).await, 2);
}

#[tokio::test]
async fn a_request_on_too_many_days_is_refused_whole() {
    let app = app(BatchLimits::default());
    let (s, _, v) = call(&app, post("/import", None, events_on_days(2000))).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("2000 different UTC days") && error.contains("ingest.max_days_per_request"), "{v}");
    assert_eq!(total(&app).await, 0);
    // At the limit it goes through.
    let (s, _, v) = call(&app, post("/import", None, events_on_days(64))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(total(&app).await, 64);
}

#[tokio::test]
async fn huge_events_are_failed_records() {
    let app = app(BatchLimits::default());
    let ok = json!({"event": "E", "properties": {"time": T0_MS / 1000, "distinct_id": "u", "$insert_id": "ok"}});
    let mut wide = ok.clone();
    for i in 0..300 {
        wide["properties"][format!("p{i}")] = json!(i);
    }
    wide["properties"]["$insert_id"] = json!("wide");
    let mut big = ok.clone();
    big["properties"]["blob"] = json!("x".repeat(1024 * 1024 + 1));
    big["properties"]["$insert_id"] = json!("big");
    let mut long_name = ok.clone();
    long_name["properties"]["n".repeat(300)] = json!(1);
    long_name["properties"]["$insert_id"] = json!("long");
    let body = serde_json::to_vec(&json!([ok, wide, big, long_name])).unwrap();
    let (s, _, v) = call(&app, gzip_import(gzip(&body))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let failed = v["failed_records"].as_array().unwrap();
    let summary: Vec<(u64, &str, &str)> = failed
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["$insert_id"].as_str().unwrap(), r["field"].as_str().unwrap()))
        .collect();
    // The oversized event is not parsed, so its `$insert_id` is not known.
    assert_eq!(summary, [(1, "wide", "properties"), (2, "", ""), (3, "long", "properties")], "{v}");
    assert!(failed[0]["message"].as_str().unwrap().contains("over the limit of 255 per event"));
    assert!(failed[1]["message"].as_str().unwrap().contains("over the limit of 1048576 bytes per event"));
    assert!(failed[2]["message"].as_str().unwrap().contains("property name of 300 bytes"));
    assert_eq!(total(&app).await, 0, "nothing of the batch is written");
}

#[tokio::test]
async fn open_segments_never_exceed_the_cap_even_within_one_group() {
    let hot = HotConfig { max_open_segments: 4, ..HotConfig::default() };
    let app = app_with(BatchLimits::default(), None, hot);
    // Eight concurrent requests of three days each, 24 days in all: the writer groups what it finds queued.
    let requests = (0..8).map(|r| {
        let router = app.router.clone();
        let v: Vec<Value> = (0..3)
            .map(|d| {
                let day = (r * 3 + d) as i64;
                json!({"event": "E", "properties": {"time": T0_MS - day * 86_400_000, "distinct_id": r}})
            })
            .collect();
        async move {
            use tower::ServiceExt;
            router.oneshot(post("/import", None, serde_json::to_string(&v).unwrap())).await.unwrap().status()
        }
    });
    for status in futures::future::join_all(requests).await {
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(total(&app).await, 24);
    let (s, _, v) = call(&app, Request::get("/v1/catalog/segments?project=default").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let segments = v["segments"].as_array().unwrap();
    let open = segments.iter().filter(|s| s["state"] == "open").count();
    assert!(open <= 4, "{open} open segments: {v}");
    assert!(segments.len() >= 24, "one segment per day at least");
}
