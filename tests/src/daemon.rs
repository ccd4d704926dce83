//! The process harness: find (or build) the `tierd` binary, run `tierd serve` on an ephemeral port in a per-test
//! directory, wait for its readiness line, kill it (-9), stop it (SIGTERM), restart it on the same data directory,
//! and talk to it over HTTP.
//!
//! Every daemon runs on the test clock (`TIERD_TEST_CLOCK_OFFSET_MS`): a test waits out a lease TTL or a grace
//! period with [`Daemon::advance_clock`] instead of sleeping, and a restart starts from the offset reached, so time
//! never goes back for the data directory.
//!
//! When a test panics while a [`Daemon`] is alive, its log tail (stderr and stdout of every start) is printed and the
//! test directory is kept, so a failure explains itself.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::mp::pct;

/// How long `tierd serve` may take to print its readiness line (crash recovery included).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd daemon may take to exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The readiness line is `tierd listening on http://127.0.0.1:PORT`.
pub const READY_PREFIX: &str = "tierd listening on ";
/// Turns the daemon's test clock on, this many ms ahead of the wall clock.
pub const TEST_CLOCK_ENV: &str = "TIERD_TEST_CLOCK_OFFSET_MS";
/// The admin token of every daemon the tests start: written to `DATA_DIR/admin.token` before its first start (a
/// daemon on loopback reads the file it finds), sent by [`http_client`] and, as `TIERD_TOKEN`, by the CLI the tests
/// run ([`cli_command`]).
pub const TEST_ADMIN_TOKEN: &str = "tierd-e2e-admin-token-0123456789abcdef";

/// The workspace root (this package lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The `tierd` binary: `$TIERD_BIN`, or built once per test process with `cargo build -p tierd-daemon --bin tierd`
/// (debug profile, like the tests) and taken from `$CARGO_TARGET_DIR` or `<root>/target`.
pub fn tierd_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("TIERD_BIN") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "TIERD_BIN={} is not a file", p.display());
            return p;
        }
        let root = workspace_root();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(&cargo)
            .current_dir(&root)
            // `--workspace`, not `-p tierd-daemon`: the dependencies are then resolved with the workspace's features,
            // as `cargo test --workspace` resolved them, and reused instead of compiled a second time.
            .args(["build", "--workspace", "--bin", "tierd"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cargo:?} build: {e}"));
        assert!(
            out.status.success(),
            "`cargo build --workspace --bin tierd` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) if Path::new(&t).is_absolute() => PathBuf::from(t),
            Some(t) => root.join(t),
            None => root.join("target"),
        };
        let bin = target.join("debug").join(format!("tierd{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.is_file(), "cargo built tierd but {} does not exist", bin.display());
        bin
    })
}

/// A per-test directory. The daemon's data directory is `<dir>/data`; logs and config files sit beside it.
/// Kept (and its path printed) when the test panics.
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let dir = tempfile::Builder::new().prefix(&format!("tierd-{name}-")).tempdir().expect("create temp dir");
        let path = dir.path().to_path_buf();
        TestDir { dir: Some(dir), path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path.join("data")
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(d) = self.dir.take() {
                let kept = d.keep();
                eprintln!("test failed: kept test directory {}", kept.display());
            }
        }
    }
}

/// Why `tierd serve` did not become ready.
#[derive(Debug)]
pub struct StartFailure {
    /// The exit status when the process exited by itself; `None` when it was killed after the timeout.
    pub status: Option<ExitStatus>,
    pub reason: String,
    /// The tail of the daemon's log (stderr + stdout).
    pub log_tail: String,
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tierd serve did not start: {} (exit status: {:?})\n--- log tail ---\n{}",
            self.reason, self.status, self.log_tail
        )
    }
}

/// An HTTP response: status, headers, raw body and the body parsed as JSON (`Null` when it is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
    pub json: Value,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap_or("<non-ascii>").to_string())
    }

    fn from_reqwest(r: reqwest::blocking::Response) -> reqwest::Result<Resp> {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes()?.to_vec();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok(Resp { status, headers, body, json })
    }
}

/// A running `tierd serve`.
pub struct Daemon {
    child: Option<Child>,
    data_dir: PathBuf,
    config_path: Option<PathBuf>,
    log_path: PathBuf,
    base_url: String,
    client: reqwest::blocking::Client,
    starts: u32,
    /// `TIERD_FAILPOINTS` for the next start (the failpoint tests set it; everyone else leaves it unset).
    failpoints: Option<String>,
    /// `TIERD_COLD_FAULTS` for the next start (fault injection in the cold tier).
    cold_faults: Option<String>,
    /// How far the test clock is ahead of the wall clock: every start begins there.
    clock_offset_ms: u64,
    /// Run passes on their schedules. Off by default (`--no-schedules`): tests that drive passes by hand must not
    /// race the scheduler; [`Daemon::start_scheduled`] turns it on.
    schedules: bool,
}

/// A blocking HTTP client without connection pooling: every request opens a fresh connection, so nothing is ever
/// sent on a connection to a daemon that was killed.
pub fn http_client() -> reqwest::blocking::Client {
    http_client_with_timeout(Duration::from_secs(60))
}

/// [`http_client`] with another per-request timeout (a long pass).
pub fn http_client_with_timeout(timeout: Duration) -> reqwest::blocking::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {TEST_ADMIN_TOKEN}");
    headers.insert(reqwest::header::AUTHORIZATION, bearer.parse().expect("a header value"));
    reqwest::blocking::Client::builder()
        .default_headers(headers)
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .build()
        .expect("build HTTP client")
}

impl Daemon {
    /// Starts `tierd serve --data-dir DATA_DIR --listen 127.0.0.1:0 --no-schedules [--config FILE]`; panics (with
    /// the log tail) when it does not become ready. `data_dir` should be [`TestDir::data_dir`]: logs go to its
    /// parent. Passes run only when the test calls them; see [`Daemon::start_scheduled`].
    pub fn start(data_dir: &Path, config_toml: Option<&str>) -> Daemon {
        Self::try_start(data_dir, config_toml).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Daemon::start`], with the scheduler on: passes run on the config's schedules (and restarts keep it on).
    pub fn start_scheduled(data_dir: &Path, config_toml: Option<&str>) -> Daemon {
        Self::try_start_with(data_dir, config_toml, true).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start(data_dir: &Path, config_toml: Option<&str>) -> Result<Daemon, StartFailure> {
        Self::try_start_with(data_dir, config_toml, false)
    }

    fn try_start_with(data_dir: &Path, config_toml: Option<&str>, schedules: bool) -> Result<Daemon, StartFailure> {
        let parent = data_dir.parent().expect("data dir has a parent");
        let name = data_dir.file_name().expect("data dir has a name").to_string_lossy().into_owned();
        write_admin_token(data_dir);
        let config_path = config_toml.map(|toml| {
            let p = parent.join(format!("{name}.tierd.toml"));
            std::fs::write(&p, toml).expect("write config");
            p
        });
        let mut d = Daemon {
            child: None,
            data_dir: data_dir.to_path_buf(),
            config_path,
            log_path: parent.join(format!("{name}.tierd.log")),
            base_url: String::new(),
            client: http_client(),
            starts: 0,
            failpoints: None,
            cold_faults: None,
            clock_offset_ms: 0,
            schedules,
        };
        d.spawn()?;
        Ok(d)
    }

    fn spawn(&mut self) -> Result<(), StartFailure> {
        assert!(self.child.is_none(), "daemon already running");
        self.starts += 1;
        let mut log = OpenOptions::new().create(true).append(true).open(&self.log_path).expect("open log");
        writeln!(log, "===== test harness: start #{} =====", self.starts).unwrap();
        let mut cmd = tierd_command();
        // Failpoints are set only where a test asks for them; an inherited setting would make the tests lie.
        match &self.failpoints {
            Some(spec) => cmd.env("TIERD_FAILPOINTS", spec),
            None => cmd.env_remove("TIERD_FAILPOINTS"),
        };
        match &self.cold_faults {
            Some(spec) => cmd.env("TIERD_COLD_FAULTS", spec),
            None => cmd.env_remove("TIERD_COLD_FAULTS"),
        };
        cmd.env(TEST_CLOCK_ENV, self.clock_offset_ms.to_string());
        cmd.arg("serve").arg("--data-dir").arg(&self.data_dir).args(["--listen", "127.0.0.1:0"]);
        if let Some(c) = &self.config_path {
            cmd.arg("--config").arg(c);
        }
        if !self.schedules {
            cmd.arg("--no-schedules");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.try_clone().expect("clone log handle"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", tierd_bin().display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel::<String>();
        // Keeps draining stdout for the life of the process, so the daemon never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log, "[stdout] {line}");
                if let Some(url) = line.strip_prefix(READY_PREFIX) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(url.trim().to_string());
                    }
                }
            }
        });
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(url) => {
                let local = url.starts_with("http://127.0.0.1:") || url.starts_with("https://127.0.0.1:");
                assert!(local, "unexpected readiness line: {READY_PREFIX}{url}");
                self.base_url = url.trim_end_matches('/').to_string();
                self.child = Some(child);
                Ok(())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // stdout closed without the readiness line: the process is exiting.
                let status = wait_timeout(&mut child, Duration::from_secs(10));
                if status.is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                Err(StartFailure {
                    status,
                    reason: "stdout closed before the readiness line".into(),
                    log_tail: self.log_tail(60),
                })
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(StartFailure {
                    status: None,
                    reason: format!("no readiness line within {READY_TIMEOUT:?}"),
                    log_tail: self.log_tail(60),
                })
            }
        }
    }

    /// `http://127.0.0.1:PORT` of the current process (`https://` when it serves TLS: the harness's own requests
    /// are plain HTTP, so such a test talks to it with its own client).
    pub fn url(&self) -> &str {
        &self.base_url
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.note("killed with SIGKILL");
        }
    }

    /// SIGTERM and wait up to [`STOP_TIMEOUT`]; panics if the daemon does not exit. Returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("daemon running");
        // Our own child's pid, which we have not reaped yet.
        rustix::process::kill_process(rustix::process::Pid::from_child(&c), rustix::process::Signal::TERM)
            .expect("kill(SIGTERM)");
        match wait_timeout(&mut c, STOP_TIMEOUT) {
            Some(st) => {
                self.note(&format!("stopped with SIGTERM: {st}"));
                st
            }
            None => {
                let _ = c.kill();
                let _ = c.wait();
                panic!("tierd did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{}", self.log_tail(60));
            }
        }
    }

    /// Sets `TIERD_FAILPOINTS` (e.g. `hot.fsync=exit@3`) for the next start; `None` clears it.
    pub fn set_failpoints(&mut self, spec: Option<&str>) {
        self.failpoints = spec.map(str::to_string);
    }

    /// Turns the scheduler on or off from the next start on (passes on the config's schedules, or only by hand).
    pub fn set_schedules(&mut self, on: bool) {
        self.schedules = on;
    }

    /// Sets `TIERD_COLD_FAULTS` (e.g. `error_rate=0.1,seed=7`) for the next start; `None` clears it.
    pub fn set_cold_faults(&mut self, spec: Option<&str>) {
        self.cold_faults = spec.map(str::to_string);
    }

    /// Moves the daemon's clock `ms` forward (`POST /v1/admin/test/clock`) and returns its new time; later starts
    /// begin at the offset reached. What a test waits out this way (a lease TTL after a start, a grace period) then
    /// takes no wall time.
    pub fn advance_clock(&mut self, ms: u64) -> i64 {
        let r = self.post_json("/v1/admin/test/clock", &serde_json::json!({ "advance_ms": ms }));
        assert_eq!(r.status, 200, "advancing the test clock answered {}: {}", r.status, r.text());
        let offset = r.json["offset_ms"].as_u64().unwrap_or_else(|| panic!("no offset_ms: {}", r.text()));
        assert_eq!(offset, self.clock_offset_ms + ms, "the daemon started at offset {}", self.clock_offset_ms);
        self.clock_offset_ms = offset;
        self.note(&format!("test clock advanced {ms} ms, to offset {offset} ms"));
        r.json["now_ms"].as_i64().unwrap_or_else(|| panic!("no now_ms: {}", r.text()))
    }

    /// Asserts that gc would delete nothing yet (a dry run): every copy out of service is still held, by a lease
    /// or by the restart rule (nothing is deleted within one lease TTL of a start). Called before
    /// [`Daemon::advance_clock`], it shows that a later gc deletes because of the wait.
    pub fn assert_gc_waits(&self) {
        let r = self.post_json("/v1/admin/passes/gc/run", &serde_json::json!({ "dry_run": true }));
        assert_eq!(r.status, 200, "gc dry run answered {}: {}", r.status, r.text());
        let actions = r.json["actions"].as_array().unwrap_or_else(|| panic!("no actions: {}", r.text()));
        let deletes = |a: &Value| a["kind"] == "delete" || a["kind"] == "erase";
        assert!(!actions.iter().any(deletes), "gc would delete before the wait: {}", r.text());
        let kept = r.json["kept"].as_array().map_or(&[][..], Vec::as_slice);
        for k in kept.iter().filter(|k| k["kind"] == "keep") {
            let reason = k["reason"].as_str().unwrap_or_default();
            assert!(
                reason.starts_with("restarted recently") || reason.starts_with("held by lease"),
                "kept for another reason than the wait: {k}"
            );
        }
    }

    /// `GET /v1/status` (the scheduler's status), as JSON.
    pub fn status(&self) -> Value {
        let r = self.get("/v1/status");
        assert_eq!(r.status, 200, "GET /v1/status answered {}: {}", r.status, r.text());
        r.json
    }

    /// The sum of the samples of `GET /metrics` whose line starts with `prefix` (0 when there are none).
    pub fn metric_sum(&self, prefix: &str) -> f64 {
        let metrics = self.get("/metrics").text();
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Polls `cond` every 100 ms for at most 60 s of real time (for what a scheduled daemon does on its own);
    /// panics with the scheduler's status and the log tail if it never holds.
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}\nstatus: {}\n{}", self.status(), self.log_tail(40));
    }

    /// Sends SIGHUP (reload the config file).
    pub fn sighup(&self) {
        let st = Command::new("kill").args(["-HUP", &self.pid().to_string()]).status().expect("run kill");
        assert!(st.success(), "kill -HUP failed: {st}");
        self.note("SIGHUP sent");
    }

    /// Replaces the config file (for the next start, or a reload: [`Daemon::sighup`]).
    pub fn set_config(&mut self, toml: &str) {
        let path = self.config_path.clone().unwrap_or_else(|| self.data_dir.with_extension("tierd.toml"));
        std::fs::write(&path, toml).expect("write config");
        self.config_path = Some(path);
    }

    /// Waits for the process to exit by itself (a failpoint that exits); `None` if it is still running after
    /// `timeout` (it is then left running).
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let c = self.child.as_mut()?;
        let st = wait_timeout(c, timeout)?;
        self.child = None;
        self.note(&format!("exited by itself: {st}"));
        Some(st)
    }

    /// Starts again (killing a running process first); returns the failure instead of panicking.
    pub fn try_restart(&mut self) -> Result<(), StartFailure> {
        self.kill9();
        self.spawn()
    }

    /// Starts again on the same data directory and config (a new ephemeral port). Kills a running process first.
    pub fn restart(&mut self) {
        self.kill9();
        if let Err(e) = self.spawn() {
            panic!("restart failed: {e}");
        }
    }

    fn note(&self, what: &str) {
        if let Ok(mut log) = OpenOptions::new().append(true).open(&self.log_path) {
            let _ = writeln!(log, "===== test harness: {what} =====");
        }
    }

    /// The last `lines` lines of the log (all starts).
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    // ---- HTTP ----

    pub fn get(&self, path_and_query: &str) -> Resp {
        let url = format!("{}{}", self.base_url, path_and_query);
        let r = self.client.get(&url).send().unwrap_or_else(|e| panic!("GET {url}: {e}\n{}", self.log_tail(40)));
        Resp::from_reqwest(r).unwrap_or_else(|e| panic!("GET {url}: reading body: {e}"))
    }

    /// `POST /import[?project=NAME]` with the given body and headers. `project` is sent verbatim (percent-encoded).
    pub fn post_import(&self, project: Option<&str>, body: Vec<u8>, headers: &[(&str, &str)]) -> Resp {
        let url = match project {
            Some(p) => format!("{}/import?project={}", self.base_url, pct(p)),
            None => format!("{}/import", self.base_url),
        };
        let mut req = self.client.post(&url).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().unwrap_or_else(|e| panic!("POST {url}: {e}\n{}", self.log_tail(40)));
        Resp::from_reqwest(r).unwrap_or_else(|e| panic!("POST {url}: reading body: {e}"))
    }

    /// Imports `events` into `project` ([`Daemon::import_ok`]) and records them in the model as acknowledged.
    pub fn send(&self, m: &mut crate::model::Model, project: &str, events: &[Value]) {
        self.import_ok(project, events);
        m.ack(project, events);
    }

    /// Runs pass `name` now (`POST /v1/admin/passes/{name}/run`); panics unless it answers 200 with no error.
    /// Returns the report.
    pub fn pass_ok(&self, name: &str) -> Value {
        let r = self.post_json(&format!("/v1/admin/passes/{name}/run"), &serde_json::json!({}));
        assert_eq!(r.status, 200, "pass {name}: {}", r.text());
        assert_eq!(r.json["errors"], serde_json::json!([]), "pass {name}: {}\n{}", r.text(), self.log_tail(30));
        r.json
    }

    /// Imports `events` as a JSON array with `Content-Type: application/json`; panics unless the answer is 200 with
    /// `num_records_imported == events.len()`.
    pub fn import_ok(&self, project: &str, events: &[Value]) {
        let r = self.post_import(Some(project), crate::mp::array_body(events), &[("content-type", "application/json")]);
        assert_import_ok(&r, events.len(), &format!("import of {} events into {project}", events.len()));
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Resp {
        let url = format!("{}{}", self.base_url, path);
        let r = self
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .unwrap_or_else(|e| panic!("POST {url}: {e}\n{}", self.log_tail(40)));
        Resp::from_reqwest(r).unwrap_or_else(|e| panic!("POST {url}: reading body: {e}"))
    }

    /// `POST /v1/query`; panics unless 200.
    pub fn query(&self, q: &Value) -> Value {
        let r = self.post_json("/v1/query", q);
        assert_eq!(r.status, 200, "query {q} answered {}: {}", r.status, r.text());
        r.json
    }

    /// `GET /v1/catalog/segments?project=P[&from=MS][&to=MS]`; panics unless 200.
    pub fn segments(&self, project: &str, from: Option<i64>, to: Option<i64>) -> Value {
        let mut path = format!("/v1/catalog/segments?project={}", pct(project));
        if let Some(f) = from {
            path.push_str(&format!("&from={f}"));
        }
        if let Some(t) = to {
            path.push_str(&format!("&to={t}"));
        }
        let r = self.get(&path);
        assert_eq!(r.status, 200, "GET {path} answered {}: {}", r.status, r.text());
        r.json
    }

    /// `GET /v1/catalog/projects` as a list.
    pub fn projects(&self) -> Vec<String> {
        let r = self.get("/v1/catalog/projects");
        assert_eq!(r.status, 200, "GET /v1/catalog/projects answered {}: {}", r.status, r.text());
        r.json["projects"]
            .as_array()
            .unwrap_or_else(|| panic!("projects is not an array: {}", r.json))
            .iter()
            .map(|p| p.as_str().expect("project names are strings").to_string())
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- tierd log tail ({}, data dir {}) -----\n{}\n----- end of tierd log -----",
                self.log_path.display(),
                self.data_dir.display(),
                self.log_tail(80)
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Asserts a 200 `{"code":200,"status":"OK","num_records_imported":n}`.
pub fn assert_import_ok(r: &Resp, n: usize, what: &str) {
    assert_eq!(r.status, 200, "{what}: expected 200, got {}: {}", r.status, r.text());
    assert_eq!(r.json["code"], 200, "{what}: body {}", r.text());
    assert_eq!(r.json["status"], "OK", "{what}: body {}", r.text());
    assert_eq!(r.json["num_records_imported"].as_u64(), Some(n as u64), "{what}: body {}", r.text());
}

/// Runs `tierd serve` expecting it to exit by itself (e.g. on a bad config) within `timeout`; returns the exit status
/// and everything it wrote to stderr and stdout. Panics (after killing it) if it becomes ready or keeps running.
pub fn serve_expecting_exit(dir: &TestDir, config_toml: &str, timeout: Duration) -> (ExitStatus, String) {
    let cfg = dir.path().join("bad-config.toml");
    std::fs::write(&cfg, config_toml).unwrap();
    let mut cmd = tierd_command();
    let mut child = cmd
        .env_remove("TIERD_FAILPOINTS")
        .env(TEST_CLOCK_ENV, "0")
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.data_dir())
        .args(["--listen", "127.0.0.1:0"])
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tierd");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_timeout(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let out = t_out.join().unwrap();
    let err = t_err.join().unwrap();
    let status = status.unwrap_or_else(|| {
        panic!("tierd serve with config\n{config_toml}\nkept running for {timeout:?}\nstdout: {out}\nstderr: {err}")
    });
    (status, format!("{err}{out}"))
}

/// A command that runs the `tierd` binary. On Linux the daemon gets SIGKILL when the thread that spawned it ends
/// (util-linux's `setpriv --pdeathsig`, which then execs tierd under the same pid), so a test process killed from
/// outside (a CI timeout, an interrupted run) leaves no daemon behind. A [`Daemon`] must therefore be started (and
/// restarted) on a thread that outlives it, as tests do naturally; `Drop` kills it in the normal case anyway.
fn tierd_command() -> Command {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    let setpriv = SETPRIV.get_or_init(|| {
        let found = ["/usr/bin/setpriv", "/bin/setpriv"].into_iter().map(PathBuf::from).find(|p| p.is_file());
        if found.is_none() {
            eprintln!("setpriv not found: daemons started by the tests will outlive a killed test process");
        }
        found
    });
    match setpriv {
        Some(setpriv) if cfg!(target_os = "linux") => {
            let mut cmd = Command::new(setpriv);
            cmd.args(["--pdeathsig", "KILL", "--"]).arg(tierd_bin());
            cmd
        }
        _ => Command::new(tierd_bin()),
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else { return format!("<no log at {}>", path.display()) };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let _ = f.seek(SeekFrom::Start(start));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Puts [`TEST_ADMIN_TOKEN`] in `data_dir/admin.token` unless a token is there (a restart keeps the first one).
pub fn write_admin_token(data_dir: &Path) {
    std::fs::create_dir_all(data_dir).expect("create the data dir");
    let path = data_dir.join("admin.token");
    if !path.exists() {
        std::fs::write(&path, format!("{TEST_ADMIN_TOKEN}\n")).expect("write the admin token");
    }
}

/// The `tierd` CLI, with `TIERD_TOKEN` set to [`TEST_ADMIN_TOKEN`].
pub fn cli_command() -> Command {
    let mut cmd = Command::new(tierd_bin());
    cmd.env("TIERD_TOKEN", TEST_ADMIN_TOKEN);
    cmd
}
