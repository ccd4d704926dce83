//! `GET /v1/segments/{id}` and `POST /v1/query` on segments whose only copy is in the cold tier (`memory://`):
//! the same bytes, events and counts as before they moved, read through the cache.

use tierd_store::hot::IngestBatch;
use tierd_store::SegmentId;

use super::*;

struct ColdApp {
    _dir: tempfile::TempDir,
    router: axum::Router,
    state: Arc<AppState>,
}

/// An app over two sealed columnar segments (two days, 3,000 events each), still hot.
async fn cold_app() -> ColdApp {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS + 3 * 86_400_000));
    let (ctx, budget) = store_context(dir.path(), clock.clone());
    let hot = Arc::new(HotTier::start(&ctx, HotConfig::default(), Arc::new(|_| {})).unwrap());
    for day in 0..2i64 {
        let events = (0..3_000i64)
            .map(|i| tierd_codecs::Event {
                event: ["a", "b", "c"][(i % 3) as usize].into(),
                time_ms: T0_MS + day * 86_400_000 + i * 1_000,
                distinct_id: format!("u{}", i % 50),
                insert_id: format!("{day}-{i}"),
                properties: json!({"n": i, "plan": if i % 2 == 0 { "free" } else { "pro" }})
                    .as_object()
                    .unwrap()
                    .clone(),
            })
            .collect();
        hot.append(IngestBatch::encode("p".into(), events)).await.unwrap();
    }
    // Seals the row segments (the passes rewrite sealed segments only).
    hot.shutdown().await;
    let state = app_state(&ctx, budget, hot, BatchLimits::default());
    let app = ColdApp { _dir: dir, router: router(state.clone(), None), state };
    let (s, _, v) = app.call(post("/v1/admin/passes/reencode/run", Some("application/json"), "")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app
}

impl ColdApp {
    async fn call(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn bytes(&self, uri: &str) -> (StatusCode, Vec<u8>) {
        let resp = self.router.clone().oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        (status, axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap().to_vec())
    }

    fn segments(&self) -> Vec<SegmentId> {
        let snapshot = self.state.catalog.snapshot();
        snapshot.lookup("p", i64::MIN, i64::MAX).iter().map(|m| m.id).collect()
    }

    async fn queries(&self) -> Vec<Value> {
        let bodies = [
            json!({"project": "p", "from": 0, "to": i64::MAX}),
            json!({"project": "p", "from": 0, "to": i64::MAX, "group_by": "event"}),
            json!({"project": "p", "from": T0_MS, "to": T0_MS + 600_000, "event": "b"}),
            json!({"project": "p", "from": 0, "to": i64::MAX, "where": [{"property": "plan", "op": "eq", "value": "pro"}],
                   "group_by": "properties.plan"}),
        ];
        let mut out = Vec::new();
        for body in bodies {
            let (s, _, mut v) = self.call(post("/v1/query", Some("application/json"), body.to_string())).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            // What was read differs by tier (cold reads fetch only what a query needs); the answer does not.
            v.as_object_mut().unwrap().remove("bytes_scanned");
            out.push(v);
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_segments_are_served_like_hot_ones() {
    let app = cold_app().await;
    let ids = app.segments();
    assert_eq!(ids.len(), 2);
    let hot_answers = app.queries().await;
    assert_eq!(hot_answers[0]["total"], 6_000);
    let mut hot_bodies = Vec::new();
    for id in &ids {
        let (s, raw) = app.bytes(&format!("/v1/segments/{id}")).await;
        assert_eq!(s, StatusCode::OK);
        let (s, ndjson) = app.bytes(&format!("/v1/segments/{id}?format=ndjson")).await;
        assert_eq!(s, StatusCode::OK);
        hot_bodies.push((raw, ndjson));
    }

    let body = json!({"segments": ids, "to": "cold"}).to_string();
    let (s, _, v) = app.call(post("/v1/admin/move", Some("application/json"), body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let snapshot = app.state.catalog.snapshot();
    assert!(ids.iter().all(|id| snapshot.get(id).unwrap().placement() == tierd_store::catalog::Placement::Cold), "{v}");

    assert_eq!(app.queries().await, hot_answers);
    for (id, (raw, ndjson)) in ids.iter().zip(&hot_bodies) {
        let (s, cold_raw) = app.bytes(&format!("/v1/segments/{id}")).await;
        assert_eq!(s, StatusCode::OK);
        assert!(cold_raw == *raw, "raw bytes of {id} differ");
        let (s, cold_ndjson) = app.bytes(&format!("/v1/segments/{id}?format=ndjson")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(String::from_utf8(cold_ndjson).unwrap(), String::from_utf8(ndjson.clone()).unwrap());
    }
    let stats = app.state.reads.cache().unwrap().stats();
    assert!(stats.bytes > 0 && stats.hits > 0, "{stats:?}");
}
