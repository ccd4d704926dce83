//! A real S3-compatible server for the cold-tier tests: moto (`moto[server]==5.2.5` from PyPI, installed by
//! `tests/run`), started on a free port of 127.0.0.1 with one bucket, killed when the [`MotoServer`] is dropped.
//!
//! moto accepts any credentials (it checks none); tests pass [`MotoServer::ACCESS_KEY_ID`] and
//! [`MotoServer::SECRET_ACCESS_KEY`] through the cold tier's configuration, never through the process environment.
//! Plain HTTP requests (no signature) work too, which is how the bucket is created and listed here.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to answer after it is started (it usually takes about a second).
pub const MOTO_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How to get moto: the README's test command installs it (tests/requirements.txt).
pub const MOTO_INSTALL: &str = "run the suite with `tests/run`, which installs the pinned test peers into .test-deps/ \
                                (or: python3 -m pip install 'moto[server]==5.2.5')";

/// A running `moto_server` with one bucket.
pub struct MotoServer {
    child: Child,
    port: u16,
    bucket: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl MotoServer {
    pub const ACCESS_KEY_ID: &'static str = "tierd-test";
    pub const SECRET_ACCESS_KEY: &'static str = "tierd-test-secret";
    pub const REGION: &'static str = "us-east-1";

    /// Starts moto with the bucket `tierd-test`.
    pub fn start() -> MotoServer {
        Self::start_with_bucket("tierd-test")
    }

    /// Starts moto on a free port and creates `bucket`. Panics with the install command when `moto_server` is not
    /// installed, and with moto's log when it does not come up.
    pub fn start_with_bucket(bucket: &str) -> MotoServer {
        let mut failures = Vec::new();
        // A port found free can be taken by another process before moto binds it: then try another.
        for _ in 0..3 {
            let dir = tempfile::Builder::new().prefix("tierd-moto-").tempdir().expect("create temp dir");
            let log = dir.path().join("moto.log");
            let port = free_port();
            let out = File::create(&log).expect("create moto log");
            let err = out.try_clone().expect("clone log handle");
            let spawned = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                // Its own process group, so that drop kills whatever a launcher (a pyenv shim) started.
                .process_group(0)
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "`moto_server` is not installed (not on PATH); the cold-tier tests need an S3-compatible \
                     server. Install it with:\n    {MOTO_INSTALL}"
                ),
                Err(e) => panic!("cannot start moto_server: {e}"),
            };
            let mut server = MotoServer { child, port, bucket: bucket.to_string(), log, _dir: dir };
            match server.wait_ready() {
                Ok(()) => {
                    server.create_bucket();
                    return server;
                }
                Err(why) => {
                    let tail = server.log_tail();
                    let port_taken = tail.contains("Address already in use");
                    failures.push(format!("{why}\n--- moto log ---\n{tail}"));
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        panic!(
            "moto_server did not come up: {}\n(if moto is missing or broken, reinstall it with: {MOTO_INSTALL})",
            failures.join("\n")
        );
    }

    /// `http://127.0.0.1:PORT`, for `cold.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `s3://BUCKET/PREFIX`, for `cold.url`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{}", self.bucket, prefix.trim_matches('/'))
    }

    /// Every key in the bucket under `prefix` (raw S3 keys, no prefix stripped), sorted: what is really stored.
    pub fn list_keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!("{}/{}?list-type=2&prefix={}", self.endpoint(), self.bucket, crate::mp::pct(prefix));
            if let Some(t) = &token {
                url.push_str(&format!("&continuation-token={}", crate::mp::pct(t)));
            }
            let body = off_runtime(|| {
                let resp = reqwest::blocking::get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
                assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
                resp.text().expect("list body")
            });
            keys.extend(xml_values(&body, "Key"));
            token = xml_values(&body, "NextContinuationToken").into_iter().next();
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        keys
    }

    /// Every object under `prefix` with its size (raw S3 keys, no prefix stripped).
    pub fn list_objects(&self, prefix: &str) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!("{}/{}?list-type=2&prefix={}", self.endpoint(), self.bucket, crate::mp::pct(prefix));
            if let Some(t) = &token {
                url.push_str(&format!("&continuation-token={}", crate::mp::pct(t)));
            }
            let body = off_runtime(|| {
                let resp = reqwest::blocking::get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
                assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
                resp.text().expect("list body")
            });
            // <Contents><Key>..</Key>...<Size>..</Size></Contents>, in the same order.
            let keys = xml_values(&body, "Key");
            let sizes = xml_values(&body, "Size");
            assert_eq!(keys.len(), sizes.len(), "listing of {prefix}: {body}");
            for (k, size) in keys.into_iter().zip(sizes) {
                out.insert(k, size.parse().expect("object size"));
            }
            token = xml_values(&body, "NextContinuationToken").into_iter().next();
            if token.is_none() {
                break;
            }
        }
        out
    }

    /// The last lines of moto's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + MOTO_READY_TIMEOUT;
        let url = format!("{}/", self.endpoint());
        loop {
            if let Some(status) = self.child.try_wait().expect("poll moto_server") {
                return Err(format!("moto_server exited with {status} before answering"));
            }
            let answered = off_runtime(|| {
                let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
                client.get(&url).send().is_ok()
            });
            if answered {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("moto_server did not answer {url} within {MOTO_READY_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn create_bucket(&self) {
        let url = format!("{}/{}", self.endpoint(), self.bucket);
        off_runtime(|| {
            let resp = reqwest::blocking::Client::new().put(&url).send().unwrap_or_else(|e| panic!("PUT {url}: {e}"));
            assert!(resp.status().is_success(), "PUT {url} (create bucket): {}\n{}", resp.status(), self.log_tail());
        });
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // The whole process group (see `process_group(0)`), then reap the child.
        let group = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs blocking HTTP off any async runtime: reqwest's blocking client must not be used (or dropped) on a runtime
/// thread, and the cold-tier tests are async.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("HTTP helper thread panicked"))
}

fn free_port() -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        drop(listener);
        // Free again right now (nothing grabbed it in between)?
        if TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1");
}

/// The texts of `<tag>...</tag>` elements (enough for S3's flat list answers).
fn xml_values(body: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(unescape(&after[..end]));
        rest = &after[end + close.len()..];
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}
