//! The official Mixpanel SDKs as real clients of the real daemon: Python `mixpanel` (PyPI) and Node `mixpanel`
//! (npm), installed by `tests/run` at pinned versions, each run over every endpoint and encoding it uses (`track`
//! and `import` one event at a time and in batches; form-encoded JSON, base64 in forms and in GET queries; verbose
//! and plain answers). Every event they sent is counted exactly once by `/v1/query`, in the project their token
//! names (`[[projects]]`), and their profile updates are refused with tierd's message.
//!
//! The client programs are `tests/clients/mixpanel_python.py` and `tests/clients/mixpanel_node.js`; a client whose
//! SDK is not installed fails the test with the command that installs it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{json, Value};
use tierd_tests::daemon::{workspace_root, Daemon, TestDir};
use tierd_tests::mp::FAR_FUTURE_MS;

/// Events per call kind: more than one batch of 50.
const N: usize = 60;
/// 2026-01-01T00:00:00Z: the time of imported (past) events.
const TIME0_MS: i64 = 1_767_225_600_000;
const CONFIG: &str = "[[projects]]\nname = \"web\"\ntoken = \"tok-web\"\n";
const PYTHON_INSTALL: &str = "`tests/run` (or: python3 -m pip install mixpanel==5.4.1)";
const NODE_INSTALL: &str = "`tests/run` (or: npm install -g mixpanel@0.24.0)";

fn client_script(name: &str) -> PathBuf {
    workspace_root().join("tests/clients").join(name)
}

/// Runs a client program: its JSON summary, or a panic that says what is missing or what failed.
fn run_client(what: &str, install: &str, mut cmd: Command, d: &Daemon) -> Value {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out: Output = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{program}` is not installed (not on PATH): the {what} test needs it; install it, then: {install}")
        }
        Err(e) => panic!("cannot run {program}: {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        panic!("the {what} is not installed: {stderr}\ninstall it with: {install}");
    }
    assert!(out.status.success(), "the {what} client failed ({}):\n{stderr}\n{}", out.status, d.log_tail(40));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("the {what} client printed no summary ({e}): {stdout}"))
}

/// Events of project `web` in `[from, to)`, by event name.
fn counts(d: &Daemon, from: i64, to: i64) -> BTreeMap<String, u64> {
    let v = d.query(&json!({"project": "web", "from": from, "to": to, "group_by": "event"}));
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_owned(), r["count"].as_u64().unwrap()))
        .collect()
}

fn sent(summary: &Value) -> BTreeMap<String, u64> {
    summary["sent"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect()
}

#[test]
fn the_official_sdks_write_every_event_exactly_once() {
    let dir = TestDir::new("mixpanel-sdks");
    let mut d = Daemon::start(&dir.data_dir(), Some(CONFIG));
    let url = d.url().to_owned();
    let host = url.trim_start_matches("http://").to_owned();

    let mut py = Command::new("python3");
    py.arg(client_script("mixpanel_python.py")).args([&url, &N.to_string(), &(TIME0_MS / 1000).to_string()]);
    let python = run_client("Python SDK (PyPI `mixpanel`)", PYTHON_INSTALL, py, &d);
    eprintln!("python mixpanel {}", python["version"]);

    // The clock tierd fills in missing times from is its own (here the test clock, ten days ahead of the wall
    // clock), never the machine's: the Node SDK's `track` sends no time.
    let before = d.advance_clock(10 * 86_400_000);
    let mut node = Command::new("node");
    node.arg(client_script("mixpanel_node.js")).args([&host, &N.to_string(), &TIME0_MS.to_string()]);
    if let Some(path) = tierd_tests::node_path() {
        node.env("NODE_PATH", path);
    }
    let node = run_client("Node SDK (npm `mixpanel`)", NODE_INSTALL, node, &d);
    let after = d.advance_clock(0);
    eprintln!("node mixpanel {}", node["version"]);

    let mut expected = sent(&python);
    expected.extend(sent(&node));
    assert_eq!(expected.len(), 8, "four kinds of call per SDK: {expected:?}");
    assert!(expected.values().all(|n| *n == N as u64), "{expected:?}");
    assert_eq!(counts(&d, 0, FAR_FUTURE_MS), expected, "every event sent, counted once, in the token's project");
    let filled = counts(&d, before, after + 1);
    assert_eq!(filled.get("node track"), Some(&(N as u64)), "times filled in from the daemon's clock: {filled:?}");
    assert_eq!(d.projects(), ["web"], "nothing went elsewhere (profile updates included)");

    // Across a restart (the hot segments recovered and sealed), still once each.
    d.stop();
    d.restart();
    assert_eq!(counts(&d, 0, FAR_FUTURE_MS), expected);
}

/// Project `web` with /import credentials, and project `app` (which the service account may not write to).
const CREDENTIALS_CONFIG: &str = r#"
[[projects]]
name = "web"
token = "tok-web"
id = "1001"
secret_file = "DIR/web.secret"
service_accounts = [{ username = "sa-web", secret_file = "DIR/sa-web.secret" }]

[[projects]]
name = "app"
token = "tok-app"
secret = "app-secret"
"#;

#[test]
fn the_python_sdk_authenticates_imports_with_a_secret_or_a_service_account() {
    let dir = TestDir::new("mixpanel-sdk-credentials");
    // Secrets from files (their first line), read by the daemon at start.
    std::fs::write(dir.path().join("web.secret"), "web-secret\n").unwrap();
    std::fs::write(dir.path().join("sa-web.secret"), "sa-web-pw\n").unwrap();
    let config = CREDENTIALS_CONFIG.replace("DIR", &dir.path().to_string_lossy());
    let d = Daemon::start(&dir.data_dir(), Some(&config));
    let mut py = Command::new("python3");
    py.arg(client_script("mixpanel_python_credentials.py")).args([
        d.url(),
        &N.to_string(),
        &(TIME0_MS / 1000).to_string(),
    ]);
    let summary = run_client("Python SDK (PyPI `mixpanel`)", PYTHON_INSTALL, py, &d);
    let expected = sent(&summary);
    assert_eq!(expected.len(), 3, "{expected:?}");
    assert_eq!(counts(&d, 0, FAR_FUTURE_MS), expected, "every accepted event once, in the credential's project");
    assert_eq!(d.projects(), ["web"], "nothing of a refused import was written anywhere");
    let log = d.log_tail(100_000);
    for secret in ["web-secret", "sa-web-pw", "app-secret"] {
        assert!(!log.contains(secret), "the log never holds a secret ({secret})");
    }
}
