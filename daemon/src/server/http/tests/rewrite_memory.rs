//! `rewrite.max_memory_bytes`: a planned rewrite over the budget is split into parts that fit, a segment that alone
//! exceeds it is reported and left as it is; answers never change.

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
async fn a_rewrite_over_the_memory_budget_is_split_and_answers_do_not_change() {
    let per_event = tierd_policies::memory::BYTES_PER_EVENT;
    let app = app_with(110 * per_event);
    four_segments(&app).await;
    let v = reencode(&app).await;
    assert_eq!(v["errors"], json!([]), "{v}");
    let actions = v["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2, "two parts of two segments (100 events each): {v}");
    assert!(actions.iter().all(|a| a["inputs"].as_array().unwrap().len() == 2), "{v}");
    assert!(actions[0]["reason"].as_str().unwrap().contains("part 1 of 2"), "{v}");
    assert_eq!(total(&app).await, 200);
}

#[tokio::test]
async fn a_segment_over_the_memory_budget_is_refused_by_name_and_kept() {
    let app = app_with(40 * tierd_policies::memory::BYTES_PER_EVENT);
    four_segments(&app).await;
    let v = reencode(&app).await;
    assert_eq!(v["actions"], json!([]), "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 4, "{v}");
    assert!(errors.iter().all(|e| e.as_str().unwrap().contains("rewrite.max_memory_bytes")), "{v}");
    assert_eq!(total(&app).await, 200);
}
