//! Rates hold, bursts are one second, big requests are not starved, waiters are served in order, and waits are
//! measured. Async tests run on tokio's paused clock: sleeps complete instantly but advance `Instant::now()`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;

const KIB: u64 = 1024;

fn budget(f: impl FnOnce(&mut BudgetConfig)) -> IoBudget {
    let mut config = BudgetConfig::unlimited();
    f(&mut config);
    IoBudget::new(&config)
}

fn assert_secs(elapsed: Duration, expected: f64) {
    let got = elapsed.as_secs_f64();
    assert!((got - expected).abs() < 0.01, "took {got:.3} s, expected {expected:.3} s");
}

#[tokio::test(start_paused = true)]
async fn object_bytes_rate_holds_after_a_one_second_burst() {
    let b = budget(|c| c.object_bytes_per_sec = 1024 * KIB);
    let start = Instant::now();
    // 10 x 512 KiB = 5 MiB at 1 MiB/s: the first 1 MiB is the burst, the other 4 MiB take 4 s.
    for _ in 0..10 {
        let _permit = b.acquire_object(512 * KIB).await;
    }
    assert_secs(start.elapsed(), 4.0);
    // Two went at once, eight waited half a second each.
    assert_secs(b.waited().object_bytes, 4.0);
}

#[tokio::test(start_paused = true)]
async fn object_request_rate_holds() {
    let b = budget(|c| c.object_requests_per_sec = 10);
    let start = Instant::now();
    for _ in 0..100 {
        let _permit = b.acquire_object(0).await;
    }
    // 10 in the burst, then 90 at 10/s.
    assert_secs(start.elapsed(), 9.0);
    assert!(b.waited().object_requests >= Duration::from_secs(9));
    assert_eq!(b.waited().object_bytes, Duration::ZERO, "no bytes were asked for");
}

#[tokio::test(start_paused = true)]
async fn a_request_bigger_than_the_burst_goes_at_once_and_later_ones_repay_it() {
    let b = budget(|c| c.object_bytes_per_sec = 1024 * KIB);
    let start = Instant::now();
    let _big = b.acquire_object(4 * 1024 * KIB).await;
    assert_secs(start.elapsed(), 0.0);
    // The bucket is 3 MiB in debt: one more byte waits until the debt is repaid.
    let _small = b.acquire_object(1).await;
    assert_secs(start.elapsed(), 3.0);
}

#[tokio::test(start_paused = true)]
async fn concurrent_waiters_are_spread_at_the_rate_in_order() {
    let b = Arc::new(budget(|c| c.disk_bytes_per_sec = 1024 * KIB));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..4u64 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            // Stagger the arrivals so the order of the reservations is known.
            tokio::time::sleep(Duration::from_millis(i)).await;
            b.acquire_disk(1024 * KIB).await;
            start.elapsed()
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap());
    }
    // The first takes the burst; each next one waits one more second.
    for (i, at) in done.iter().enumerate() {
        assert!((at.as_secs_f64() - i as f64).abs() < 0.01, "waiter {i} finished at {at:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_capped_while_permits_are_held() {
    let b = Arc::new(budget(|c| c.object_max_concurrent = 2));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (b, in_flight, peak) = (b.clone(), in_flight.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = b.acquire_object(0).await;
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    // 5 one-second requests, 2 at a time: 3 rounds.
    assert_secs(start.elapsed(), 3.0);
    assert!(b.waited().object_concurrency >= Duration::from_secs(4), "{:?}", b.waited());
}

#[tokio::test(start_paused = true)]
async fn charged_bytes_make_the_next_request_wait() {
    let b = budget(|c| c.object_bytes_per_sec = 1024 * KIB);
    let start = Instant::now();
    b.charge_object_bytes(3 * 1024 * KIB);
    assert_secs(start.elapsed(), 0.0);
    let _permit = b.acquire_object(1024 * KIB).await;
    // 1 MiB burst - 3 MiB charged = 2 MiB of debt; 1 MiB more is available after 3 s.
    assert_secs(start.elapsed(), 3.0);
}

#[tokio::test(start_paused = true)]
async fn the_bucket_refills_to_one_second_only() {
    let b = budget(|c| c.object_bytes_per_sec = 1024 * KIB);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let start = Instant::now();
    // An idle minute does not bank a minute of burst.
    let _a = b.acquire_object(1024 * KIB).await;
    let _b = b.acquire_object(1024 * KIB).await;
    assert_secs(start.elapsed(), 1.0);
}

#[tokio::test(start_paused = true)]
async fn zero_means_unlimited() {
    let b = IoBudget::unlimited();
    let start = Instant::now();
    for _ in 0..1000 {
        let _permit = b.acquire_object(u64::MAX / 2).await;
        b.acquire_disk(u64::MAX / 2).await;
    }
    b.acquire_disk_blocking(u64::MAX / 2);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(b.waited(), BudgetWaits::default());
}

#[test]
fn the_blocking_variant_sleeps_the_thread() {
    let b = budget(|c| c.disk_bytes_per_sec = 1000);
    let start = crate::clock::Stopwatch::start();
    b.acquire_disk_blocking(1000);
    b.acquire_disk_blocking(100);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(90) && took < Duration::from_secs(2), "took {took:?}");
    assert!(b.waited().disk_bytes >= Duration::from_millis(90));
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = BudgetConfig::default();
    assert_eq!(c.object_bytes_per_sec, 64 * 1024 * 1024);
    assert_eq!(c.object_requests_per_sec, 200);
    assert_eq!(c.object_max_concurrent, 8);
    assert_eq!(c.disk_bytes_per_sec, 128 * 1024 * 1024);
}
