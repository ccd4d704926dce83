//! `passes.max_run_secs`: a scheduled rewrite run stops starting actions once its time is up and leaves the rest to
//! its next run (deferred, not failed); a run by hand is not cut; every run makes progress; answers never change.

use std::sync::atomic::{AtomicI64, Ordering};

use tierd_store::clock::Sleep;

use super::*;
use crate::api::{PassName, PassRequest};
use crate::server::config::Config;

/// A clock that moves a second forward each time it is read: every action of a run takes "seconds".
#[derive(Debug)]
struct TickingClock(AtomicI64);

impl tierd_store::Clock for TickingClock {
    fn now_ms(&self) -> i64 {
        self.0.fetch_add(1_000, Ordering::SeqCst)
    }

    fn sleep_until(&self, _deadline_ms: i64) -> Sleep {
        Box::pin(std::future::ready(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_run_stops_at_its_time_slice_and_the_next_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, budget) = store_context(dir.path(), Arc::new(TickingClock(AtomicI64::new(T0_MS))));
    let hot_config = HotConfig { seal_max_bytes: 1, ..HotConfig::default() };
    let hot = Arc::new(HotTier::start(&ctx, hot_config, Arc::new(|_| {})).unwrap());
    let mut config = Config::default();
    config.passes.reencode.min_age_secs = 0;
    config.passes.max_run_secs = 2;
    let state = app_state_with(&ctx, budget, hot, BatchLimits::default(), &config);
    let app = App { _dir: dir, router: router(state.clone(), None) };
    // Three days of one batch each: three re-encode actions.
    for day in 0..3i64 {
        let events: Vec<Value> = (0..20)
            .map(|i| {
                json!({"event": "E", "properties": {"time": T0_MS / 1000 - day * 86_400 + i, "distinct_id": "u",
                "$insert_id": format!("d{day}-{i}")}})
            })
            .collect();
        let (s, _, v) = call(&app, post("/import", None, serde_json::to_string(&events).unwrap())).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let catalog = ctx.catalog.clone();
    let sealed_rows = || {
        catalog
            .snapshot()
            .segments()
            .filter(|m| m.state == tierd_store::catalog::SegmentState::Sealed)
            .filter(|m| m.format == tierd_store::catalog::Format::Rows)
            .count()
    };
    for _ in 0..500 {
        if sealed_rows() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(sealed_rows(), 3, "three sealed row segments");
    let run = |scheduled: bool| {
        let passes = state.passes.current();
        tokio::task::spawn_blocking(move || {
            let req = PassRequest::default();
            if scheduled {
                passes.run_scheduled(PassName::Reencode, &req)
            } else {
                passes.run(PassName::Reencode, &req)
            }
        })
    };
    let first = run(true).await.unwrap();
    assert_eq!(first.errors, Vec::<String>::new());
    assert_eq!(first.actions.len(), 1, "cut after its first action (each takes seconds on this clock): {first:?}");
    let why = first.deferred.as_deref().expect("the cut run says it deferred the rest");
    assert!(why.contains("passes.max_run_secs = 2"), "{why}");
    assert_eq!(sealed_rows(), 2);
    assert_eq!(total(&app).await, 60);
    let by_hand = run(false).await.unwrap();
    assert_eq!((by_hand.actions.len(), by_hand.deferred.clone()), (2, None), "a run by hand is not cut: {by_hand:?}");
    assert_eq!(sealed_rows(), 0);
    assert_eq!(total(&app).await, 60);
}
