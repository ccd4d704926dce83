//! `[query]`'s bounds on `POST /v1/query`: each hostile query gets its 413/503 JSON error naming the key, is counted,
//! and the daemon answers the next query as before.

use super::*;
use crate::server::config::{Config, QuerySection};

/// An app with `query` as its `[query]`, and its state (to hold query slots by hand).
fn app_with(query: QuerySection) -> (App, Arc<AppState>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let (ctx, budget) = store_context(dir.path(), clock);
    let hot = Arc::new(HotTier::start(&ctx, HotConfig::default(), Arc::new(|_| {})).unwrap());
    let config = Config { query, ..Config::default() };
    let state = app_state_with(&ctx, budget, hot, BatchLimits::default(), &config);
    (App { _dir: dir, router: router(state.clone(), None) }, state)
}

/// `n` events from `first`, each with its own value of `k`.
async fn import(app: &App, first: usize, n: usize) {
    let events: Vec<Value> = (first..first + n)
        .map(|i| {
            json!({"event": "E", "properties": {"time": T0_MS / 1000 + (i % 3600) as i64, "distinct_id": "u",
            "$insert_id": format!("i{i}"), "k": i}})
        })
        .collect();
    let (s, _, v) = call(app, post("/import", None, serde_json::to_string(&events).unwrap())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn query(app: &App, extra: Value) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut q = json!({"project": "default", "from": 0, "to": i64::MAX});
    q.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    call(app, post("/v1/query", Some("application/json"), q.to_string())).await
}

#[tokio::test]
async fn conditions_groups_and_memory_past_their_bounds_are_413s_naming_the_key() {
    let (app, _) = app_with(QuerySection { max_conditions: 2, max_groups: 10, ..QuerySection::default() });
    import(&app, 0, 30).await;
    let cond = json!({"property": "k", "op": "exists"});
    let (s, _, v) = query(&app, json!({"where": [cond, cond, cond]})).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v["error"].as_str().unwrap().contains("3 where conditions; at most 2 (query.max_conditions)"), "{v}");
    let (s, _, v) = query(&app, json!({"group_by": "properties.k"})).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v["error"].as_str().unwrap().contains("more than 10 groups (query.max_groups)"), "{v}");
    // Within the bounds, as before.
    let (s, _, v) = query(&app, json!({"where": [cond, cond], "group_by": "event"})).await;
    assert_eq!((s, &v["total"]), (StatusCode::OK, &json!(30)), "{v}");

    let (app, _) = app_with(QuerySection { max_memory_bytes: 500, ..QuerySection::default() });
    import(&app, 0, 30).await;
    let (s, _, v) = query(&app, json!({"where": [cond]})).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v["error"].as_str().unwrap().contains("query.max_memory_bytes"), "{v}");
}

#[tokio::test]
async fn limit_answers_the_largest_groups_and_sums_the_rest() {
    let (app, _) = app_with(QuerySection::default());
    import(&app, 0, 20).await;
    // Two more copies of k = 0..3 under other insert ids: those groups are the largest.
    let extra: Vec<Value> = (0..6)
        .map(|i| {
            json!({"event": "E", "properties": {"time": T0_MS / 1000, "distinct_id": "u",
            "$insert_id": format!("x{i}"), "k": i % 3}})
        })
        .collect();
    call(&app, post("/import", None, serde_json::to_string(&extra).unwrap())).await;
    let (s, _, v) = query(&app, json!({"group_by": "properties.k", "limit": 3})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 26);
    let keys: Vec<&Value> = v["rows"].as_array().unwrap().iter().map(|r| &r["key"]).collect();
    assert_eq!(keys, [&json!(0), &json!(1), &json!(2)], "{v}");
    assert_eq!(v["other"], json!({"groups": 17, "count": 17}), "{v}");
    let (_, _, v) = query(&app, json!({"group_by": "properties.k", "limit": 100})).await;
    assert!(v.get("other").is_none() && v["rows"].as_array().unwrap().len() == 20, "{v}");
    let (s, _, v) = query(&app, json!({"group_by": "properties.k", "limit": 0})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn queries_past_max_concurrent_get_a_503_with_retry_after_at_once() {
    let (app, state) = app_with(QuerySection { max_concurrent: 2, ..QuerySection::default() });
    import(&app, 0, 5).await;
    let held: Vec<_> = (0..2).map(|_| state.queries.enter(2).unwrap()).collect();
    let (s, headers, v) = query(&app, json!({})).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(headers.get("retry-after").unwrap(), "1");
    assert!(v["error"].as_str().unwrap().contains("query.max_concurrent"), "{v}");
    drop(held);
    let (s, _, v) = query(&app, json!({})).await;
    assert_eq!((s, &v["total"]), (StatusCode::OK, &json!(5)), "{v}");
    assert_eq!(state.queries.running(), 0, "a finished query gives its slot back");
    assert_eq!(state.queries.memory.used(), 0, "and its memory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_its_timeout_is_stopped_and_frees_its_slot() {
    let (app, state) = app_with(QuerySection { timeout_ms: 1, ..QuerySection::default() });
    for batch in 0..20 {
        import(&app, batch * 2000, 2000).await;
    }
    let cond = json!({"property": "k", "op": "exists"});
    let (s, _, v) = query(&app, json!({"where": [cond], "group_by": "properties.k"})).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(v["error"].as_str().unwrap().contains("query.timeout_ms = 1"), "{v}");
    // The query itself stops, rather than reading its 40,000 events for nobody: its slot and memory come back.
    wait_stopped(&state, 1).await;
}

/// Waits (at most 5 s) until `n` queries were stopped from outside and none runs.
async fn wait_stopped(state: &AppState, n: u64) {
    use std::sync::atomic::Ordering;
    for _ in 0..500 {
        if state.queries.stopped.load(Ordering::Relaxed) == n && state.queries.running() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(state.queries.stopped.load(Ordering::Relaxed), n, "the query saw it was stopped");
    assert_eq!((state.queries.running(), state.queries.memory.used()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_whose_client_went_away_is_stopped() {
    let (app, state) = app_with(QuerySection::default());
    for batch in 0..20 {
        import(&app, batch * 2000, 2000).await;
    }
    let q = json!({"project": "default", "from": 0, "to": i64::MAX, "group_by": "properties.k",
        "where": [{"property": "k", "op": "exists"}]});
    let req = post("/v1/query", Some("application/json"), q.to_string());
    // The client gives up after 5 ms: the request's future is dropped mid-query.
    let gone = tokio::time::timeout(std::time::Duration::from_millis(5), app.router.clone().oneshot(req)).await;
    assert!(gone.is_err(), "the query answered within 5 ms: too small to test a disconnect");
    wait_stopped(&state, 1).await;
    let (s, _, v) = query(&app, json!({})).await;
    assert_eq!((s, &v["total"]), (StatusCode::OK, &json!(40_000)), "{v}");
}
