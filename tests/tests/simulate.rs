//! `tierd simulate` on the real binary: the JSON report's shape and the invariants that hold for any workload
//! (no tuned numbers): three scenarios side by side, costs finite and non-negative and adding up, all-hot moving
//! nothing, the same seed giving the same report, `--config` reaching the latency model, and an access log replayed
//! (or refused with the line named).

use std::process::{Command, Output};

use serde_json::Value;
use tierd_tests::daemon::{tierd_bin, TestDir};

fn simulate(args: &[&str]) -> Output {
    Command::new(tierd_bin()).arg("simulate").args(args).output().expect("run tierd simulate")
}

fn report(args: &[&str]) -> Value {
    let out = simulate(args);
    assert!(out.status.success(), "tierd simulate {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the report is JSON")
}

fn scenario<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["scenarios"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("{name}"))
}

fn f(s: &Value, key: &str) -> f64 {
    s[key].as_f64().unwrap_or_else(|| panic!("{key} is not a number in {s}"))
}

#[test]
fn generated_report_shape_and_invariants() {
    let r = report(&["--json", "--days", "10", "--history-days", "0", "--seed", "5"]);
    let names: Vec<&str> = r["scenarios"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["all-hot", "age-only", "tierd"]);
    assert_eq!((r["days"].as_f64(), r["history_days"].as_f64()), (Some(10.0), Some(0.0)));
    assert!(r["reads"].as_u64().unwrap() > 0);
    for s in r["scenarios"].as_array().unwrap() {
        for key in
            ["monthly_cost", "total_cost", "storage_cost", "transition_cost", "read_cost", "p50_read_ms", "p99_read_ms"]
        {
            let v = f(s, key);
            assert!(v.is_finite() && v >= 0.0, "{key} = {v} in {s}");
        }
        for key in ["bytes_moved", "requests", "reads", "end_bytes_hot", "end_bytes_cold"] {
            assert!(s[key].is_u64(), "{key} in {s}");
        }
        let parts = f(s, "storage_cost") + f(s, "transition_cost") + f(s, "read_cost");
        assert!((f(s, "total_cost") - parts).abs() < 1e-6, "{s}");
        assert!(f(s, "p50_read_ms") <= f(s, "p99_read_ms"));
        assert_eq!(s["reads"], r["scenarios"][0]["reads"], "every scenario serves the same reads");
    }
    let hot = scenario(&r, "all-hot");
    assert_eq!((hot["bytes_moved"].as_u64(), hot["requests"].as_u64()), (Some(0), Some(0)));
    assert_eq!(hot["end_bytes_cold"].as_u64(), Some(0));
    // In 10 days without history nothing is 30 days idle: age-only moves nothing (its ladder only recompresses).
    let age = scenario(&r, "age-only");
    assert_eq!((age["bytes_moved"].as_u64(), age["end_bytes_cold"].as_u64()), (Some(0), Some(0)));
    assert!(f(age, "monthly_cost") < f(hot, "monthly_cost"), "the same ladder as tierd's: {age}");
    // The same seed, the same report; another seed, another workload.
    assert_eq!(report(&["--json", "--days", "10", "--history-days", "0", "--seed", "5"]), r);
    assert_ne!(report(&["--json", "--days", "10", "--history-days", "0", "--seed", "6"])["scenarios"], r["scenarios"]);
}

#[test]
fn history_gives_age_only_idle_data_and_recompress_false_a_plain_store() {
    // A short default-like run: 35 days of history, 3 measured. Days idle for 30 days went cold before or in the
    // window; the history is not counted.
    let r = report(&["--json", "--days", "3", "--history-days", "35", "--seed", "2"]);
    assert_eq!((r["days"].as_f64(), r["history_days"].as_f64()), (Some(3.0), Some(35.0)));
    let age = scenario(&r, "age-only");
    assert!(age["end_bytes_cold"].as_u64().unwrap() > 0, "{age}");
    let (hot, tierd) = (scenario(&r, "all-hot"), scenario(&r, "tierd"));
    assert!(f(tierd, "monthly_cost") < f(hot, "monthly_cost"));
    // recompress = false: age-only keeps the ingest codec; with nothing idle for 30 days it is all-hot.
    let dir = TestDir::new("simulate-plain");
    let path = dir.path().join("tierd.toml");
    std::fs::write(&path, "[simulate.age_only]\nrecompress = false\n").unwrap();
    let r = report(&["--json", "--days", "5", "--history-days", "0", "--config", path.to_str().unwrap()]);
    let (hot, age) = (scenario(&r, "all-hot"), scenario(&r, "age-only"));
    assert_eq!((f(age, "monthly_cost"), age["requests"].as_u64()), (f(hot, "monthly_cost"), Some(0)));
}

#[test]
fn config_reaches_the_latency_model() {
    let dir = TestDir::new("simulate-config");
    let path = dir.path().join("tierd.toml");
    std::fs::write(&path, "[simulate.latency]\nhot_first_byte_ms = 5000.0\n").unwrap();
    let r = report(&["--json", "--days", "3", "--config", path.to_str().unwrap()]);
    assert!(f(scenario(&r, "all-hot"), "p50_read_ms") >= 5000.0, "{r}");
    std::fs::write(&path, "[simulate.latency]\nhot_first_byte_ms = -1.0\n").unwrap();
    let out = simulate(&["--json", "--days", "3", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hot_first_byte_ms"));
}

#[test]
fn config_reaches_the_tierd_scenarios_policy() {
    let args = ["--json", "--days", "12", "--history-days", "0", "--seed", "3"];
    let default = report(&args);
    assert!(scenario(&default, "tierd")["bytes_moved"].as_u64().unwrap() > 0, "{default}");
    // One rule keeping everything hot: the tierd scenario runs it, and moves nothing.
    let dir = TestDir::new("simulate-policy");
    let path = dir.path().join("tierd.toml");
    std::fs::write(&path, "[[policy.rules]]\nname = \"keep\"\nplacement = \"hot\"\n").unwrap();
    let r = report(&[&args[..], &["--config", path.to_str().unwrap()]].concat());
    let tierd = scenario(&r, "tierd");
    assert_eq!((tierd["bytes_moved"].as_u64(), tierd["end_bytes_cold"].as_u64()), (Some(0), Some(0)), "{tierd}");
    assert!(tierd["recompressions"].as_u64().unwrap() > 0, "the ladder still runs: {tierd}");
}

#[test]
fn access_log_is_replayed_and_a_bad_line_is_named() {
    let dir = TestDir::new("simulate-log");
    let path = dir.path().join("access.ndjson");
    let day = 86_400_000i64;
    let mut log = String::new();
    for d in 0..5 {
        let t = (20_758 + d + 1) * day;
        log.push_str(&format!(
            "{{\"time_ms\":{t},\"project\":\"web\",\"day\":\"2026-11-{:02}\",\"bytes\":1073741824,\"op\":\"write\"}}\n",
            d + 1
        ));
        log.push_str(&format!(
            "{{\"time_ms\":{},\"project\":\"web\",\"day\":\"2026-11-01\",\"bytes\":1048576}}\n",
            t + 3_600_000
        ));
    }
    std::fs::write(&path, &log).unwrap();
    let r = report(&["--json", "--access-log", path.to_str().unwrap()]);
    assert_eq!(r["reads"].as_u64(), Some(5));
    assert_eq!(r["segments"].as_u64(), Some(5 * 4), "1 GiB days are split into 4 segments of 256 MiB");
    assert_eq!(scenario(&r, "all-hot")["end_bytes_hot"].as_u64(), Some(5 << 30));

    log.push_str("{\"time_ms\":1,\"project\":\"web\",\"day\":\"2026-11-31\",\"bytes\":1}\n");
    std::fs::write(&path, &log).unwrap();
    let out = simulate(&["--access-log", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 11") && err.contains("2026-11-31"), "{err}");
}

#[test]
fn a_workload_too_big_for_memory_is_refused_before_it_is_built() {
    let out = simulate(&["--days", "10000000"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_workload_bytes"), "{err}");

    let dir = TestDir::new("simulate-limit");
    let (log, config) = (dir.path().join("access.ndjson"), dir.path().join("tierd.toml"));
    std::fs::write(&log, "{\"time_ms\":1,\"project\":\"web\",\"day\":\"2026-11-01\",\"bytes\":1}\n".repeat(10))
        .unwrap();
    std::fs::write(&config, "[simulate]\nmax_workload_bytes = 100\n").unwrap();
    let out = simulate(&["--config", config.to_str().unwrap(), "--access-log", log.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("simulate.max_workload_bytes") && err.contains("bytes"), "{err}");
}
