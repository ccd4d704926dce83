//! `[http]`'s bounds in process: a body that does not arrive in time is a 408 JSON answer, and a streamed segment
//! whose client takes nothing for `send_timeout_ms` is abandoned with an error, not a clean end.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::StreamExt;

use super::*;
use crate::server::config::{Config, HttpSection};

#[tokio::test]
async fn a_body_that_stops_arriving_is_a_408_and_nothing_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let (ctx, budget) = store_context(dir.path(), clock);
    let hot = Arc::new(HotTier::start(&ctx, HotConfig::default(), Arc::new(|_| {})).unwrap());
    let config =
        Config { http: HttpSection { body_read_timeout_ms: 100, ..HttpSection::default() }, ..Config::default() };
    let state = app_state_with(&ctx, budget, hot, BatchLimits::default(), &config);
    let app = App { _dir: dir, router: router(state, None) };
    // Half an array, then nothing more: the client stalls.
    let first: Result<Bytes, std::io::Error> = Ok(Bytes::from_static(br#"[{"event":"E","properties":{"time":1"#));
    let stalled = futures::stream::iter([first]).chain(futures::stream::pending());
    let req = Request::post("/import").header("content-type", "application/json").body(Body::from_stream(stalled));
    let (s, _, v) = call(&app, req.unwrap()).await;
    assert_eq!(s, StatusCode::REQUEST_TIMEOUT, "{v}");
    assert!(v["error"].as_str().unwrap().contains("http.body_read_timeout_ms"), "{v}");
    assert_eq!(total(&app).await, 0);
    // A body that arrives in time is served as before.
    let body = json!([{"event": "E", "properties": {"time": T0_MS / 1000, "distinct_id": "u", "$insert_id": "a"}}]);
    let (s, _, v) = call(&app, post("/import", None, body.to_string())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(total(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_abandoned_and_its_body_ends_in_an_error() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let abandoned = Arc::new(AtomicBool::new(false));
    let sender = super::super::read::ChunkSender {
        tx,
        timeout: std::time::Duration::from_millis(50),
        abandoned: abandoned.clone(),
    };
    let id: tierd_store::SegmentId = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    let sent = tokio::task::spawn_blocking(move || {
        // The first chunk fills the channel; the client never takes it, so the second waits and gives up.
        (sender.send(Ok(Bytes::from_static(b"a")), id), sender.send(Ok(Bytes::from_static(b"b")), id))
    })
    .await
    .unwrap();
    assert_eq!(sent, (true, false));
    assert!(abandoned.load(Ordering::Relaxed));
    assert_eq!(rx.recv().await.unwrap().unwrap(), Bytes::from_static(b"a"));
    assert!(rx.recv().await.is_none(), "the sender stopped (and dropped the segment's pin)");
}
