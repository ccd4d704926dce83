//! Issue 12, "Bound every resource", on the real binary: hostile `/import` requests in parallel get a clear JSON
//! 413 or 503 (with Retry-After), the daemon's peak memory stays within the in-flight budget, its file descriptors
//! within `hot.max_open_segments`, and a normal import right after is acknowledged.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tierd_tests::daemon::{Daemon, Resp, TestDir};
use tierd_tests::mp::{array_body, gzip, MS_PER_DAY};

const MIB: u64 = 1024 * 1024;

/// A field of `/proc/PID/status` in kB (`VmHWM`: the peak resident set).
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in {status}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

#[allow(clippy::disallowed_methods)] // the wall clock of the test process, only to pick recent event times
fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn normal_import_is_served(d: &Daemon, id: &str) {
    let events = [json!({"event": "ok", "properties": {"time": now_ms(), "distinct_id": "u", "$insert_id": id}})];
    d.import_ok("p", &events);
}

/// A refusal of the parallel hostile requests: the count's 413, or the in-flight budget's 503 with Retry-After.
fn assert_refused(r: &Resp) {
    match r.status {
        413 => {
            assert_eq!(r.json["code"], 413, "{}", r.text());
            assert_eq!(r.json["error"], "request has 5000000 events, over the limit of 2000 events per request");
        }
        503 => {
            assert_eq!(r.json["code"], 503, "{}", r.text());
            assert!(r.text().contains("ingest.max_inflight_bytes"), "{}", r.text());
            assert_eq!(r.header("retry-after").as_deref(), Some("1"));
        }
        other => panic!("expected 413 or 503, got {other}: {}", r.text()),
    }
}

#[test]
fn parallel_gzip_bombs_are_refused_within_the_inflight_budget() {
    let dir = TestDir::new("bombs");
    let inflight = 80 * MIB;
    let config = format!("[ingest]\nmax_inflight_bytes = {inflight}\n");
    let d = Daemon::start(&dir.data_dir(), Some(&config));
    normal_import_is_served(&d, "warm-up");
    let before_kb = proc_status_kb(d.pid(), "VmHWM");

    // The body: a JSON array of five million zeros, 10 MB decoded, about 10 KB sent.
    let bomb = gzip(format!("[{}0]", "0,".repeat(4_999_999)).as_bytes());
    assert!(bomb.len() < 20_000, "{} bytes", bomb.len());
    let answers: Vec<Resp> = std::thread::scope(|s| {
        let posts: Vec<_> = (0..16)
            .map(|_| {
                let (d, bomb) = (&d, bomb.clone());
                s.spawn(move || d.post_import(Some("p"), bomb, &[("content-encoding", "gzip")]))
            })
            .collect();
        posts.into_iter().map(|p| p.join().unwrap()).collect()
    });
    answers.iter().for_each(assert_refused);
    assert!(answers.iter().any(|r| r.status == 413), "at least one request was decoded and counted");

    let after_kb = proc_status_kb(d.pid(), "VmHWM");
    let growth = (after_kb - before_kb) * 1024;
    println!("VmHWM before {before_kb} kB, after {after_kb} kB: +{} MiB", growth / MIB);
    // The budget bounds what requests hold; allow the allocator 64 MiB of slack beyond it. Before the budget and the
    // counting scan, 16 such requests raised the peak by several hundred MiB (RELIABILITY.md).
    assert!(growth <= inflight + 64 * MIB, "peak RSS grew by {} MiB, budget {} MiB", growth / MIB, inflight / MIB);
    normal_import_is_served(&d, "after");
    let total = d.query(&json!({"project": "p", "from": 0, "to": i64::MAX}));
    assert_eq!(total["total"], 2, "{total}");
}

#[test]
fn requests_on_many_days_never_hold_more_than_the_open_segment_cap() {
    let dir = TestDir::new("days");
    let max_open = 32;
    let config = format!("[hot]\nmax_open_segments = {max_open}\n[ingest]\nmax_days_per_request = 16\n");
    let d = Daemon::start(&dir.data_dir(), Some(&config));
    normal_import_is_served(&d, "warm-up");
    let fds_before = open_fds(d.pid());
    let day0 = now_ms() - 400 * MS_PER_DAY;
    let on_days = |from: i64, days: i64| -> Vec<Value> {
        (from..from + days)
            .map(|i| json!({"event": "e", "properties": {"time": day0 + i * MS_PER_DAY, "distinct_id": "u", "$insert_id": format!("d{i}")}}))
            .collect()
    };

    // The request: 2000 events on 2000 days. Refused whole, with the key to change.
    let r = d.post_import(Some("p"), array_body(&on_days(0, 2000)), &[("content-type", "application/json")]);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("2000 different UTC days") && r.text().contains("ingest.max_days_per_request"));

    // Sixteen parallel requests of 16 days each, 256 days in all, eight times the cap, while a sampler watches the
    // daemon's descriptors (past days are sealed by date right after their commit, so only the peak tells).
    let done = std::sync::atomic::AtomicBool::new(false);
    let pid = d.pid();
    let fds_peak = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(open_fds(pid));
            }
            peak
        });
        let posts: Vec<_> = (0..16)
            .map(|k| {
                let (d, events) = (&d, on_days(k * 16, 16));
                s.spawn(move || d.import_ok("p", &events))
            })
            .collect();
        posts.into_iter().for_each(|p| p.join().unwrap());
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        sampler.join().unwrap()
    });
    let segments = d.segments("p", None, None);
    let open = segments["segments"].as_array().unwrap().iter().filter(|s| s["state"] == "open").count();
    println!("open segments {open}, descriptors before {fds_before}, at most {fds_peak} during the requests");
    assert!(open <= max_open, "{open} open segments over the cap of {max_open}");
    // The cap, plus the sixteen connections of the requests and a few files sled and the catalog may open.
    assert!(fds_peak <= fds_before + max_open + 16 + 8, "{fds_before} descriptors before, {fds_peak} at the peak");
    let total = d.query(&json!({"project": "p", "from": 0, "to": i64::MAX}));
    assert_eq!(total["total"], 257, "{total}");
    normal_import_is_served(&d, "after");
}
