//! The scheduler on a manual clock: runs at each fire time, never overlaps, survives failures and panics, follows a
//! reload, and waits for runs in flight at shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tierd_store::ManualClock;
use tokio::sync::Semaphore;

use super::*;
use crate::api::PassStatus;

const T0: i64 = 1_767_225_600_000;

fn config(every_second: &[&str]) -> Config {
    let mut c = Config::default();
    let p = &mut c.passes;
    for s in [
        &mut p.reencode.schedule,
        &mut p.compact.schedule,
        &mut p.recompress.schedule,
        &mut p.migrate.schedule,
        &mut p.promote.schedule,
        &mut p.gc.schedule,
        &mut p.heat.schedule,
    ] {
        s.clear();
    }
    for name in every_second {
        let s = match *name {
            "reencode" => &mut p.reencode.schedule,
            "compact" => &mut p.compact.schedule,
            "gc" => &mut p.gc.schedule,
            "heat" => &mut p.heat.schedule,
            other => panic!("{other}"),
        };
        *s = "* * * * * *".into();
    }
    p.schedule_jitter_secs = 0;
    c
}

fn job(f: impl Fn() -> Result<JobReport, String> + Send + Sync + 'static) -> Job {
    let f = Arc::new(f);
    Arc::new(move || {
        let f = f.clone();
        Box::pin(async move { f() })
    })
}

fn status(s: &Scheduler, name: &str) -> PassStatus {
    s.board().answer(0).passes.into_iter().find(|p| p.name == name).unwrap()
}

/// Waits (real time, at most 5 s) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

fn scheduler(clock: &ManualClock, config: &Config) -> (Arc<Scheduler>, CancellationToken) {
    let shutdown = CancellationToken::new();
    let s = Scheduler::new(Arc::new(clock.clone()), config, true, None, shutdown.clone()).unwrap();
    (s, shutdown)
}

#[tokio::test]
async fn each_fire_runs_once_and_failures_and_panics_stop_nobody() {
    let clock = ManualClock::new(T0);
    let (s, shutdown) = scheduler(&clock, &config(&["reencode", "compact", "gc"]));
    let ok = Arc::new(AtomicU64::new(0));
    let counted = ok.clone();
    s.register(
        "reencode",
        job(move || Ok(JobReport { actions: counted.fetch_add(1, Ordering::SeqCst) + 1, errors: vec![] })),
    );
    s.register("compact", job(|| Ok(JobReport { actions: 1, errors: vec!["compact of [\"A\"]: disk full".into()] })));
    s.register("gc", job(|| -> Result<JobReport, String> { panic!("gc broke") }));
    s.start();
    for k in 1..=3u64 {
        let fire = T0 + 1000 * k as i64;
        for name in ["reencode", "compact", "gc"] {
            eventually("next run", || status(&s, name).next_run_ms == Some(fire)).await;
        }
        clock.set_ms(fire);
        eventually("three runs", || ["reencode", "compact", "gc"].iter().all(|n| status(&s, n).runs == k)).await;
    }
    assert_eq!(ok.load(Ordering::SeqCst), 3, "one run per fire time");
    let r = status(&s, "reencode");
    assert_eq!((r.runs, r.failures, r.last_run.unwrap().outcome), (3, 0, RunOutcome::Ok));
    let c = status(&s, "compact");
    assert_eq!((c.runs, c.failures), (3, 3), "a run with failed actions is a failed run");
    assert_eq!(c.last_run.unwrap().message.as_deref(), Some("compact of [\"A\"]: disk full"));
    let g = status(&s, "gc");
    assert_eq!((g.runs, g.failures, g.running), (3, 3, false));
    assert_eq!(g.last_run.unwrap().message.as_deref(), Some("panicked: gc broke"));
    assert_eq!(status(&s, "migrate").next_run_ms, None, "\"\" disables");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), s.stopped()).await.expect("stops");
}

#[tokio::test]
async fn a_run_still_going_skips_the_next_fire_and_shutdown_waits_for_it() {
    let clock = ManualClock::new(T0);
    let (s, shutdown) = scheduler(&clock, &config(&["reencode"]));
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicU64::new(0));
    let (g, st) = (gate.clone(), started.clone());
    s.register(
        "reencode",
        Arc::new(move || {
            let (g, st) = (g.clone(), st.clone());
            Box::pin(async move {
                st.fetch_add(1, Ordering::SeqCst);
                g.acquire().await.unwrap().forget();
                Ok(JobReport::default())
            })
        }),
    );
    s.start();
    eventually("first next run", || status(&s, "reencode").next_run_ms == Some(T0 + 1000)).await;
    clock.set_ms(T0 + 1000);
    eventually("running", || status(&s, "reencode").running).await;
    eventually("second next run", || status(&s, "reencode").next_run_ms == Some(T0 + 2000)).await;
    clock.set_ms(T0 + 2000);
    eventually("skipped", || status(&s, "reencode").skipped == 1).await;
    assert_eq!(started.load(Ordering::SeqCst), 1, "never two runs at once");
    // Shutdown waits for the run in flight.
    shutdown.cancel();
    let mut stopped = Box::pin(s.stopped());
    assert!(tokio::time::timeout(Duration::from_millis(100), &mut stopped).await.is_err(), "waits for the run");
    gate.add_permits(1);
    tokio::time::timeout(Duration::from_secs(5), stopped).await.expect("stops once the run ends");
    let r = status(&s, "reencode");
    assert_eq!((r.runs, r.skipped, r.running), (1, 1, false));
}

#[tokio::test]
async fn a_reload_moves_the_next_run_and_can_disable_a_job() {
    let clock = ManualClock::new(T0 + 500);
    let (s, shutdown) = scheduler(&clock, &config(&["heat"]));
    s.register("heat", job(|| Ok(JobReport::default())));
    s.start();
    eventually("every second", || status(&s, "heat").next_run_ms == Some(T0 + 1000)).await;
    let mut c = config(&[]);
    c.passes.heat.schedule = "*/10 * * * * *".into();
    s.apply(&c).unwrap();
    eventually("every 10 s", || status(&s, "heat").next_run_ms == Some(T0 + 10_000)).await;
    assert_eq!(status(&s, "heat").schedule, "*/10 * * * * *");
    s.apply(&config(&[])).unwrap();
    eventually("disabled", || !status(&s, "heat").enabled && status(&s, "heat").next_run_ms.is_none()).await;
    clock.set_ms(T0 + 60_000);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(status(&s, "heat").runs, 0, "a disabled job does not run");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), s.stopped()).await.expect("stops");
}

#[tokio::test]
async fn without_schedules_nothing_runs_but_the_status_shows_the_schedules() {
    let clock = ManualClock::new(T0);
    let shutdown = CancellationToken::new();
    let s = Scheduler::new(Arc::new(clock.clone()), &config(&["reencode"]), false, None, shutdown.clone()).unwrap();
    let runs = Arc::new(AtomicU64::new(0));
    let r = runs.clone();
    s.register("reencode", job(move || Ok(JobReport { actions: r.fetch_add(1, Ordering::SeqCst), errors: vec![] })));
    s.start();
    clock.set_ms(T0 + 5_000);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let a = s.board().answer(0);
    assert!(!a.scheduler);
    let st = status(&s, "reencode");
    assert_eq!((st.schedule.as_str(), st.enabled, st.next_run_ms), ("* * * * * *", false, None));
    shutdown.cancel();
    s.stopped().await;
}
