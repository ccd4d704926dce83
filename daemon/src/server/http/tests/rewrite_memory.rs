//! `rewrite.max_memory_bytes`: rewrites stream within it whatever the number of events (a re-encode of every
//! segment of a day is one rewrite), a budget too small for even one input is reported by segment and leaves it
//! as it is; answers never change.

use super::*;
use crate::server::config::Config;

/// An app whose hot tier seals every batch into its own segment, with `max_memory_bytes` for rewrites.
fn app_with(max_memory_bytes: u64) -> App {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let (ctx, budget) = store_context(dir.path(), clock);
    let hot_config = HotConfig { seal_max_bytes: 1, ..HotConfig::default() };
    let hot = Arc::new(HotTier::start(&ctx, hot_config, Arc::new(|_| {})).unwrap());
    let mut config = Config::default();
    config.rewrite.max_memory_bytes = max_memory_bytes;
    config.passes.reencode.min_age_secs = 0;
    let state = app_state_with(&ctx, budget, hot, BatchLimits::default(), &config);
    App { _dir: dir, router: router(state, None) }
}

/// Four batches of 50 events of one day: four sealed row segments.
async fn four_segments(app: &App) {
    for b in 0..4 {
        let events: Vec<Value> = (0..50)
            .map(|i| {
                json!({"event": "E", "properties": {"time": T0_MS / 1000 + i, "distinct_id": "u",
                "$insert_id": format!("b{b}-{i}")}})
            })
            .collect();
        let (s, _, v) = call(app, post("/import", None, serde_json::to_string(&events).unwrap())).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // Sealing by size happens in the writer's own time: wait until all four are sealed.
    for _ in 0..500 {
        let (_, _, v) =
            call(app, Request::get("/v1/catalog/segments?project=default").body(Body::empty()).unwrap()).await;
        let sealed = v["segments"].as_array().unwrap().iter().filter(|m| m["state"] == "sealed").count();
        if sealed == 4 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("four sealed row segments expected");
}

async fn reencode(app: &App) -> Value {
    let (s, _, v) = call(app, post("/v1/admin/passes/reencode/run", Some("application/json"), "{}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

#[tokio::test]
async fn a_rewrite_streams_within_the_budget_and_is_not_split_by_event_count() {
    // 64 MiB: enough for the streaming floor (two output writers, a sort buffer), whatever the events.
    let app = app_with(64 << 20);
    four_segments(&app).await;
    let v = reencode(&app).await;
    assert_eq!(v["errors"], json!([]), "{v}");
    let actions = v["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "one rewrite of the four segments: {v}");
    assert_eq!(actions[0]["inputs"].as_array().unwrap().len(), 4, "{v}");
    assert_eq!(total(&app).await, 200);
}

#[tokio::test]
async fn a_segment_over_the_memory_budget_is_refused_by_name_and_kept() {
    // 4 MiB cannot hold the output writers and a sort buffer: every segment is refused, none is lost.
    let app = app_with(4 << 20);
    four_segments(&app).await;
    let v = reencode(&app).await;
    assert_eq!(v["actions"], json!([]), "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 4, "{v}");
    assert!(errors.iter().all(|e| e.as_str().unwrap().contains("rewrite.max_memory_bytes")), "{v}");
    assert_eq!(total(&app).await, 200);
}
