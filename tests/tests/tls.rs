//! HTTPS (`http.tls_cert_file`, `http.tls_key_file`) end to end: the daemon serves TLS with a certificate from a
//! test CA, and the official Node SDK, which sends `/import` secrets and service accounts over HTTPS only, imports
//! with both and tracks; every accepted event is counted once, the refused ones nowhere. A client that connects
//! and never completes a handshake is cut off after `http.header_read_timeout_ms`, and plain HTTP to the TLS port
//! gets no answer.
//!
//! The daemon's answers are read with a rustls client here (the harness's own client speaks plain HTTP).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use tierd_tests::daemon::{tierd_bin, workspace_root, Daemon, TestDir, TEST_ADMIN_TOKEN};
use tierd_tests::mp::FAR_FUTURE_MS;

const N: usize = 60;
/// 2026-01-01T00:00:00Z.
const TIME0_MS: i64 = 1_767_225_600_000;
const NODE_INSTALL: &str = "`tests/run` (or: npm install -g mixpanel@0.24.0)";

/// A test CA and a server certificate it signed for `localhost` and 127.0.0.1, written as `ca.pem`, `cert.pem`
/// and `key.pem` in `dir`; returns the CA's PEM.
fn write_certificates(dir: &Path) -> String {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "tierd test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    ca.pem()
}

/// Sends `request` over one TLS connection that trusts only `ca_pem`, and reads the answer until the server
/// closes it: the status and the body (text).
fn exchange(addr: &str, ca_pem: &str, request: &[u8]) -> (u16, String) {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request).unwrap();
    let mut answer = Vec::new();
    // The server closes after its answer (`Connection: close`); an end without close_notify is not our concern.
    if let Err(e) = tls.read_to_end(&mut answer) {
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "reading the answer: {e}");
    }
    let text = String::from_utf8(answer).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    (status, body.to_owned())
}

/// One HTTPS request with the test admin token: the status and the JSON body.
fn https(addr: &str, ca_pem: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TEST_ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, text) = exchange(addr, ca_pem, request.as_bytes());
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")))
}

/// Events of project `web`, by event name, over HTTPS.
fn counts(addr: &str, ca_pem: &str) -> BTreeMap<String, u64> {
    let q = json!({"project": "web", "from": 0, "to": FAR_FUTURE_MS, "group_by": "event"});
    let (status, v) = https(addr, ca_pem, "POST", "/v1/query", Some(&q));
    assert_eq!(status, 200, "{v}");
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_owned(), r["count"].as_u64().unwrap()))
        .collect()
}

const CONFIG: &str = r#"
[http]
tls_cert_file = "DIR/cert.pem"
tls_key_file = "DIR/key.pem"
header_read_timeout_ms = 1500

[[projects]]
name = "web"
token = "tok-web"
id = "1001"
secret = "web-secret"
service_accounts = [{ username = "sa-web", secret = "sa-web-pw" }]

[[projects]]
name = "app"
token = "tok-app"
secret = "app-secret"
"#;

#[test]
fn the_node_sdk_imports_with_credentials_over_https() {
    let dir = TestDir::new("tls");
    let ca = write_certificates(dir.path());
    let config = CONFIG.replace("DIR", &dir.path().to_string_lossy());
    let d = Daemon::start(&dir.data_dir(), Some(&config));
    let addr = d.url().strip_prefix("https://").unwrap_or_else(|| panic!("served over TLS: {}", d.url())).to_owned();
    let (host, port) = addr.split_once(':').unwrap();

    let mut node = Command::new("node");
    node.arg(workspace_root().join("tests/clients/mixpanel_node_credentials.js"))
        .args([host, port, &N.to_string(), &TIME0_MS.to_string()])
        .env("NODE_EXTRA_CA_CERTS", dir.path().join("ca.pem"));
    if let Some(path) = tierd_tests::node_path() {
        node.env("NODE_PATH", path);
    }
    let out = node.output().unwrap_or_else(|e| panic!("cannot run node ({e}); install Node.js, then {NODE_INSTALL}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(3), "the Node SDK is not installed: {stderr}\ninstall it with: {NODE_INSTALL}");
    assert!(out.status.success(), "the Node client failed ({}):\n{stderr}\n{}", out.status, d.log_tail(40));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    let sent: BTreeMap<String, u64> =
        summary["sent"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap())).collect();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(counts(&addr, &ca), sent, "every accepted event once, in the credential's project; nothing refused");
    let (status, projects) = https(&addr, &ca, "GET", "/v1/catalog/projects", None);
    assert_eq!(status, 200, "{projects}");
    assert_eq!(projects["projects"], json!(["web"]), "nothing of a refused import was written anywhere");

    // The CLI over HTTPS: it trusts the daemon's CA from TIERD_CA_CERT, and without it says what to set.
    let status = |ca: Option<&Path>| {
        let mut cmd = Command::new(tierd_bin());
        cmd.args(["status", "--json", "--url", d.url()])
            .env("TIERD_TOKEN", TEST_ADMIN_TOKEN)
            .env_remove("TIERD_CA_CERT");
        if let Some(ca) = ca {
            cmd.env("TIERD_CA_CERT", ca);
        }
        cmd.output().unwrap()
    };
    let out = status(Some(&dir.path().join("ca.pem")));
    assert!(out.status.success(), "tierd status over HTTPS: {}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(answer["passes"].is_array(), "{answer}");
    let out = status(None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("TIERD_CA_CERT"),
        "an untrusted certificate names the fix: {stderr}"
    );

    // Plain HTTP to the TLS port: no answer (the handshake fails, the connection is closed).
    let mut plain = TcpStream::connect(&addr).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!got.starts_with(b"HTTP/"), "plain HTTP was answered in clear text: {:?}", String::from_utf8_lossy(&got));

    // A client that connects and never starts the handshake is closed after the header timeout, not held forever.
    let mut silent = TcpStream::connect(&addr).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let n = silent.read(&mut byte).unwrap_or(0);
    let waited = started.elapsed();
    assert_eq!(n, 0, "the server sent nothing before closing");
    assert!(waited < Duration::from_secs(15), "closed after the 1.5 s header timeout, not held: {waited:?}");
    let (status, metrics) =
        exchange(&addr, &ca, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    let failures = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tierd_http_tls_handshake_failures_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no handshake failure counter in /metrics"));
    assert!(failures >= 2.0, "the plain and the silent connection are counted: {failures}");
}
