//! Credentials on the real daemon: the embedded default (loopback, no config) writes its admin token to
//! `DATA_DIR/admin.token` and asks for it on the query and admin API while ingest stays open; a daemon asked to
//! listen beyond loopback without credentials refuses to start and says what to set, and starts with them.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use tierd_tests::daemon::{tierd_bin, TestDir, READY_PREFIX, TEST_CLOCK_ENV};

/// A `tierd serve` started by hand (not through the harness, which writes its own token); killed when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &TestDir, listen: &str, config: Option<&str>) -> Result<Served, String> {
    let mut cmd = Command::new(tierd_bin());
    cmd.env_remove("TIERD_FAILPOINTS").env(TEST_CLOCK_ENV, "0").arg("serve").arg("--data-dir").arg(dir.data_dir());
    cmd.args(["--listen", listen, "--no-schedules"]);
    if let Some(toml) = config {
        let path = dir.path().join("tierd.toml");
        std::fs::write(&path, toml).unwrap();
        cmd.arg("--config").arg(path);
    }
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines().map_while(Result::ok) {
        if let Some(url) = line.strip_prefix(READY_PREFIX) {
            // Reached through loopback whatever the listen address.
            let url = url.trim().replace("0.0.0.0", "127.0.0.1");
            return Ok(Served { child, url });
        }
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    Err(format!("{status}: {err}"))
}

/// A client that sends no token unless asked.
fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

fn get(url: &str, token: Option<&str>) -> u16 {
    let mut req = client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().unwrap().status().as_u16()
}

#[test]
fn the_embedded_default_writes_an_admin_token_and_asks_for_it() {
    let dir = TestDir::new("access-default");
    let d = serve(&dir, "127.0.0.1:0", None).unwrap_or_else(|e| panic!("tierd serve failed: {e}"));
    let path = dir.data_dir().join("admin.token");
    let token = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64, "32 random bytes in hex");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "readable by its owner only");

    assert_eq!(get(&format!("{}/v1/status", d.url), None), 401);
    assert_eq!(get(&format!("{}/v1/status", d.url), Some("not-the-token")), 401);
    assert_eq!(get(&format!("{}/v1/status", d.url), Some(&token)), 200);
    assert_eq!(get(&format!("{}/healthz", d.url), None), 200, "probes stay open");
    let run_gc = |token: Option<&str>| {
        let mut req = client().post(format!("{}/v1/admin/passes/gc/run", d.url)).json(&json!({}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap().status().as_u16()
    };
    assert_eq!(run_gc(None), 401);
    assert_eq!(run_gc(Some(&token)), 200);
    // Ingest stays open on loopback with no [[projects]].
    let events = json!([{"event": "e", "properties": {"time": 1_767_225_600, "distinct_id": "u"}}]);
    let r = client().post(format!("{}/import", d.url)).json(&events).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // The CLI takes the token from TIERD_TOKEN, and says where to find one without it.
    let cli = |token: Option<&str>| {
        let mut cmd = Command::new(tierd_bin());
        cmd.args(["pass", "run", "gc", "--url", &d.url]).env_remove("TIERD_TOKEN");
        if let Some(t) = token {
            cmd.env("TIERD_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let refused = cli(None);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("DATA_DIR/admin.token"), "{refused:?}");
    assert!(cli(Some(&token)).status.success());
}

#[test]
fn listening_beyond_loopback_needs_credentials() {
    let dir = TestDir::new("access-public");
    let err = serve(&dir, "0.0.0.0:0", None).err().expect("refused without credentials");
    assert!(err.contains("not a loopback address") && err.contains("[[access_tokens]]"), "{err}");
    assert!(!dir.data_dir().join("admin.token").exists(), "no admin token beyond loopback");
    // Access tokens alone are not enough: /import would be open to the network.
    let tokens_only = "[[access_tokens]]\nname = \"ops\"\nrole = \"admin\"\ntoken = \"ops-token-0123456789\"\n";
    let err = serve(&dir, "0.0.0.0:0", Some(tokens_only)).err().expect("refused without /import credentials");
    assert!(err.contains("[[projects]]"), "{err}");
    let full = format!("{tokens_only}\n[[projects]]\nname = \"web\"\ntoken = \"tok-web\"\nsecret = \"web-secret\"\n");
    let d = serve(&dir, "0.0.0.0:0", Some(&full)).unwrap_or_else(|e| panic!("with credentials: {e}"));
    assert_eq!(get(&format!("{}/v1/status", d.url), None), 401);
    assert_eq!(get(&format!("{}/v1/status", d.url), Some("ops-token-0123456789")), 200);
    let events = json!([{"event": "e", "properties": {"time": 1_767_225_600, "distinct_id": "u"}}]);
    let r = client().post(format!("{}/import", d.url)).json(&events).send().unwrap();
    assert_eq!(r.status().as_u16(), 401, "/import needs its credential");
    let r = client().post(format!("{}/import", d.url)).basic_auth("web-secret", Some("")).json(&events).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
