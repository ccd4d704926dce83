//! In-process tests of the HTTP layer: status codes, error shapes and content negotiation. The end-to-end suite in
//! `tests/` drives the real binary.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tierd_codecs::BatchLimits;
use tierd_store::hot::{HotConfig, HotTier};
use tierd_store::layout::Layout;
use tierd_store::{Catalog, Failpoints, ManualClock};
use tower::ServiceExt;

use super::AppState;

mod access;
mod browser;
mod cold_reads;
mod credentials;
#[path = "tests/deletions.rs"]
mod deletions_api;
mod http_limits;
mod ingest_limits;
mod mixpanel;
mod pass_slices;
mod query_limits;
mod rewrite_memory;

const T0_MS: i64 = 1_767_225_600_000;
/// The admin token of every in-process app; [`router`] sends it on the API's requests that have none.
const TEST_TOKEN: &str = "test-admin-token";

/// The daemon's router, with [`TEST_TOKEN`] on requests to the query and admin API that carry no `Authorization`
/// (the access tests in `tests/access.rs` use the plain router).
fn router(state: Arc<AppState>, test_clock: Option<tierd_store::clock::OffsetClock>) -> axum::Router {
    super::router(state, test_clock).layer(axum::middleware::map_request(|mut req: Request<Body>| async move {
        let api = req.uri().path().starts_with("/v1/");
        if api && !req.headers().contains_key("authorization") {
            let value = axum::http::HeaderValue::from_static("Bearer test-admin-token");
            req.headers_mut().insert("authorization", value);
        }
        req
    }))
}

struct App {
    _dir: tempfile::TempDir,
    router: axum::Router,
}

/// A store over `root` on `clock`, with a `memory://` cold tier without limits (and that budget).
fn store_context(
    root: &std::path::Path,
    clock: Arc<dyn tierd_store::Clock>,
) -> (tierd_store::StoreContext, Arc<tierd_store::IoBudget>) {
    let layout = Layout::new(root);
    let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
    let budget = Arc::new(tierd_store::IoBudget::unlimited());
    let cold_config = tierd_store::ColdConfig { url: "memory://".into(), ..Default::default() };
    let cold = Arc::new(tierd_store::ColdStore::open(&cold_config, root, budget.clone(), None).unwrap());
    let failpoints = Arc::new(Failpoints::none());
    let ctx =
        tierd_store::StoreContext::new(layout, catalog, clock, failpoints, cold, tokio::runtime::Handle::current());
    (ctx, budget)
}

/// The daemon's state over `ctx` with the default configuration, no schedules and no metrics recorder.
fn app_state(
    ctx: &tierd_store::StoreContext,
    budget: Arc<tierd_store::IoBudget>,
    hot: Arc<HotTier>,
    limits: BatchLimits,
) -> Arc<AppState> {
    app_state_with(ctx, budget, hot, limits, &crate::server::config::Config::default())
}

/// [`app_state`] with `config`.
fn app_state_with(
    ctx: &tierd_store::StoreContext,
    budget: Arc<tierd_store::IoBudget>,
    hot: Arc<HotTier>,
    limits: BatchLimits,
    config: &crate::server::config::Config,
) -> Arc<AppState> {
    let (layout, catalog, cold, clock) = (ctx.layout.clone(), ctx.catalog.clone(), ctx.cold.clone(), ctx.clock.clone());
    let heat = Arc::new(tierd_store::HeatTracker::open(catalog.clone(), clock.clone(), Default::default()).unwrap());
    let deletions = Arc::new(tierd_store::DeletionLog::open(catalog.clone()).unwrap());
    let control = crate::server::schedule::Control::new(
        ctx.clone(),
        config,
        false,
        None,
        (None, None),
        tokio_util::sync::CancellationToken::new(),
        crate::server::schedule::PassInputs { heat: heat.clone(), deletions: deletions.clone(), cache: None },
    )
    .unwrap();
    let reads = tierd_store::SegmentSource::new(
        layout.clone(),
        Arc::new(cold.foreground()),
        Arc::new(tierd_store::BlockCache::open(&layout.cache_dir(), &Default::default()).unwrap()),
        tokio::runtime::Handle::current(),
    );
    Arc::new(AppState {
        deletions,
        queries: Arc::new(super::read::QueryGate::new(config.query.max_total_memory_bytes)),
        leases: Arc::new(tierd_store::catalog::LeaseGrants::new(config.catalog.max_live_leases)),
        heat,
        reads,
        passes: control.passes,
        scheduler: control.scheduler,
        reloader: control.reloader,
        layout,
        catalog,
        hot,
        clock,
        limits,
        ingest: super::IngestGate::new(
            &crate::server::config::IngestConfig::default(),
            HotConfig::default().max_open_segments,
        ),
        track: super::TrackSettings::new(config),
        credentials: Arc::new(super::auth::Credentials::resolve(&config.projects, &|_| None).unwrap()),
        access: Arc::new(super::access::AccessTokens::admin_only(TEST_TOKEN)),
        lease_ttl_ms: 60_000,
        metrics: None,
        cold,
        budget,
    })
}

fn app(limits: BatchLimits) -> App {
    app_with(limits, None, HotConfig::default())
}

/// [`app`] with an ingest gate of `ingest` (else the default) and a hot tier of `hot`.
fn app_with(limits: BatchLimits, ingest: Option<super::IngestGate>, hot: HotConfig) -> App {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let (ctx, budget) = store_context(dir.path(), clock.clone());
    let hot = HotTier::start(&ctx, hot, Arc::new(|_| {}));
    let mut state = app_state(&ctx, budget, Arc::new(hot.unwrap()), limits);
    if let Some(gate) = ingest {
        Arc::get_mut(&mut state).expect("the only handle").ingest = gate;
    }
    App { _dir: dir, router: router(state, None) }
}

async fn call(app: &App, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, v)
}

fn post(uri: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::post(uri);
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(body.into()).unwrap()
}

fn events(n: usize) -> String {
    let v: Vec<Value> = (0..n)
        .map(|i| json!({"event": "E", "properties": {"time": T0_MS / 1000 + i as i64, "distinct_id": i, "k": "v"}}))
        .collect();
    serde_json::to_string(&v).unwrap()
}

async fn total(app: &App) -> u64 {
    let q = json!({"project": "default", "from": 0, "to": i64::MAX});
    let (s, _, v) = call(app, post("/v1/query", Some("application/json"), q.to_string())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["total"].as_u64().unwrap()
}

#[tokio::test]
async fn import_acknowledges_and_counts() {
    let app = app(BatchLimits::default());
    let (s, _, v) = call(&app, post("/import", Some("application/json"), events(3))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"code": 200, "status": "OK", "num_records_imported": 3}));
    assert_eq!(total(&app).await, 3);
}

#[tokio::test]
async fn gzip_bodies_are_decoded() {
    let app = app(BatchLimits::default());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(events(4).as_bytes()).unwrap();
    let req = Request::post("/import?project=default")
        .header("content-encoding", "gzip")
        .body(Body::from(gz.finish().unwrap()))
        .unwrap();
    let (s, _, v) = call(&app, req).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(total(&app).await, 4);
}

#[tokio::test]
async fn bad_requests_get_json_errors_and_write_nothing() {
    let app = app(BatchLimits { max_events: 5, max_bytes: 4096, ..BatchLimits::MIXPANEL });
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (post("/import", Some("application/xml"), events(1)), StatusCode::BAD_REQUEST, "Content-Type"),
        (post("/import?project=a/b", None, events(1)), StatusCode::BAD_REQUEST, "project name"),
        (post("/import", None, ""), StatusCode::BAD_REQUEST, "empty"),
        (post("/import", None, "[{\"event\":"), StatusCode::BAD_REQUEST, "JSON"),
        (post("/import", None, events(6)), StatusCode::PAYLOAD_TOO_LARGE, "5"),
        (post("/import", None, "x".repeat(5000)), StatusCode::PAYLOAD_TOO_LARGE, "4096"),
        (
            Request::post("/import").header("content-encoding", "br").body(Body::from(events(1))).unwrap(),
            StatusCode::BAD_REQUEST,
            "Content-Encoding",
        ),
        (
            Request::post("/import").header("content-encoding", "gzip").body(Body::from("not gzip")).unwrap(),
            StatusCode::BAD_REQUEST,
            "gzip",
        ),
    ];
    for (req, status, needle) in cases {
        let what = format!("{} {:?}", req.uri(), req.headers());
        let (s, _, v) = call(&app, req).await;
        assert_eq!(s, status, "{what}: {v}");
        assert_eq!(v["code"], json!(status.as_u16()), "{what}: {v}");
        assert_eq!(v["status"], json!(status.canonical_reason().unwrap()), "{what}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{what}: {msg:?} should mention {needle:?}");
    }
    assert_eq!(total(&app).await, 0);
}

#[tokio::test]
async fn invalid_records_are_listed_and_the_batch_is_refused() {
    let app = app(BatchLimits::default());
    let body = json!([
        {"event": "ok", "properties": {"time": 1_767_225_600, "$insert_id": "a"}},
        {"event": "", "properties": {"time": 1_767_225_600, "$insert_id": "b"}},
        {"event": "no time", "properties": {}},
    ]);
    let (s, _, v) = call(&app, post("/import", Some("application/json"), body.to_string())).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let failed = v["failed_records"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{v}");
    assert_eq!(failed[0]["index"], json!(1));
    assert_eq!(failed[0]["$insert_id"], json!("b"));
    assert_eq!(failed[0]["field"], json!("event"));
    assert_eq!(failed[1]["index"], json!(2));
    assert_eq!(failed[1]["field"], json!("properties.time"));
    assert_eq!(total(&app).await, 0);
}

#[tokio::test]
async fn segment_ids_are_validated_before_lookup() {
    let app = app(BatchLimits::default());
    let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
    let (s, _, _) = call(&app, get("/v1/segments/..%2F..%2Fetc%2Fpasswd")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = call(&app, get("/v1/segments/01ARZ3NDEKTSV4RRFFQ69G5FAV")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, v) = call(&app, get("/nope")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["code"], json!(404));
}

#[tokio::test]
async fn catalog_lookup_returns_a_lease_and_the_segments() {
    let app = app(BatchLimits::default());
    call(&app, post("/import", None, events(2))).await;
    let (s, _, v) = call(&app, Request::get("/v1/catalog/segments?project=default").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["lease"]["expires_at_ms"], json!(T0_MS + 60_000));
    assert_eq!(v["segments"].as_array().unwrap().len(), 1);
    assert_eq!(v["segments"][0]["rows"], json!(2));
    assert_eq!(v["segments"][0]["day"], json!("2026-01-01"));
    let id = v["segments"][0]["id"].as_str().unwrap().to_string();
    let resp = app.router.clone().oneshot(Request::get(format!("/v1/segments/{id}")).body(Body::empty()).unwrap());
    let resp = resp.await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/vnd.tierd.rows");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    assert_eq!(bytes.len() as u64, v["segments"][0]["bytes"].as_u64().unwrap());
    let (s, _, _) =
        call(&app, Request::get("/v1/catalog/segments?project=default&from=5&to=5").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn operator_errors_get_their_status_by_variant() {
    let app = app(BatchLimits::default());
    let cases = [
        ("/v1/admin/passes/nope/run", json!({}), StatusCode::NOT_FOUND, "unknown pass \"nope\""),
        ("/v1/admin/trash/restore", json!({"batch_ms": 5}), StatusCode::NOT_FOUND, "no trash batch 5"),
        (
            "/v1/admin/trash/restore",
            json!({"batch_ms": 5, "segments": ["x"]}),
            StatusCode::BAD_REQUEST,
            "bad segment id",
        ),
        ("/v1/admin/move", json!({"segments": [], "to": "cold"}), StatusCode::BAD_REQUEST, "no segments"),
        ("/v1/admin/move", json!({"segments": ["x"], "to": "mars"}), StatusCode::BAD_REQUEST, "mars"),
        // Without a test clock (TIERD_TEST_CLOCK_OFFSET_MS) its route does not exist.
        ("/v1/admin/test/clock", json!({"advance_ms": 1000}), StatusCode::NOT_FOUND, "no such endpoint"),
    ];
    for (uri, body, status, needle) in cases {
        let (s, _, v) = call(&app, post(uri, Some("application/json"), body.to_string())).await;
        assert_eq!(s, status, "{uri} {body}: {v}");
        assert_eq!(v["code"], json!(status.as_u16()), "{v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{uri}: {v}");
    }
    let (s, _, v) = call(&app, post("/v1/query", Some("application/json"), json!({"from": 0, "to": 1, "where": [{"property": "a", "op": "eq", "value": 1}, {"property": "b", "op": "like"}]}).to_string())).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().starts_with("where[1]: unknown op \"like\""), "{v}");
}

#[tokio::test]
async fn a_panicking_background_task_answers_a_json_500() {
    use axum::routing::get;
    let panics = || async {
        let n = crate::server::background::run("tierd-test", 3, || -> u32 { panic!("boom") }).await?;
        Ok::<_, super::ApiError>(n.to_string())
    };
    let router = axum::Router::new().route("/panic", get(panics));
    let resp = router.oneshot(Request::get("/panic").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v, json!({"code": 500, "status": "Internal Server Error", "error": "tierd-test panicked: boom"}));
}

#[tokio::test]
async fn answers_keep_their_sorted_key_order() {
    let app = app(BatchLimits::default());
    let req = post("/v1/admin/move", Some("application/json"), json!({"segments": ["x"], "to": "cold"}).to_string());
    let resp = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        r#"{"results":[{"bytes_copied":0,"error":"invalid segment id \"x\": expected 26 characters of Crockford base32 (a ULID)","outcome":"error","segment":"x"}],"to":"cold"}"#
    );
}
